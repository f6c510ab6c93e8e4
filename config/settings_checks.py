"""Checks that need the resolved settings (e.g. DNS record rules); run by `load_settings`.

Each check takes a `MailSettings` and yields `Problem`s. They run whenever the configuration could be
resolved, even if other problems were found, so the user still sees every problem at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mailstack.config import delivery_checks, record_checks, web_checks
from mailstack.config.errors import Problem
from mailstack.config.settings import MailSettings

SettingsCheck = Callable[[MailSettings], Iterable[Problem]]

ALL: tuple[SettingsCheck, ...] = (*record_checks.ALL, *delivery_checks.ALL, *web_checks.ALL)
WARNINGS: tuple[SettingsCheck, ...] = delivery_checks.WARNINGS
"""Checks whose findings are reported but do not stop a deploy (`MailSettings.warnings`)."""
