"""Adapter from Pulumi's config to the pure loader: the only place that reads `pulumi.Config` internals."""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config

from mailstack.config import MailSettings, load_settings


def read_settings() -> MailSettings:
    """Load and validate this stack's `mailstack:*` configuration.

    Raises:
        pulumi.RunError: with every configuration problem listed, before any resource is registered.
            RunError makes Pulumi print the message alone, without a Python traceback.
    """
    from mailstack.config import ConfigError, checks

    # pulumi.Config cannot enumerate keys; the runtime's config map holds every key the CLI passed,
    # which is what lets the loader report a misspelt key instead of ignoring it.
    raw: dict[str, object] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = {key for key in raw if runtime_config.is_config_secret(key)}
    secret_keys |= set(runtime_config.get_config_secret_keys_env())
    try:
        settings = load_settings(
            raw,
            secret_keys=secret_keys,
            stack=pulumi.get_stack(),
            extra_checks=(checks.private_key_file, checks.watchtower_under_pulumi),
        )
    except ConfigError as err:
        raise pulumi.RunError(str(err)) from None
    # Findings that do not stop a deploy: shown by `pulumi preview`/`up` as warnings.
    for warning in settings.warnings:
        pulumi.log.warn(f"mailstack: {warning.render()[2:]}")
    return settings
