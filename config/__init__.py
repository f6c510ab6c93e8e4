"""Pure core: the configuration contract, its validation, and the builders (no Pulumi imports)."""

from config.errors import ConfigError, Problem
from config.load import load_settings
from config.settings import MailSettings

__all__ = ["ConfigError", "MailSettings", "Problem", "load_settings"]
