"""Pure core: the configuration contract, its validation, and the builders (no Pulumi imports)."""

from mailstack.config.errors import ConfigError, Problem
from mailstack.config.load import load_settings
from mailstack.config.settings import MailSettings

__all__ = ["ConfigError", "MailSettings", "Problem", "load_settings"]
