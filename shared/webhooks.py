"""The Discord webhooks alerts go to, by name: alerts, jobs and logs name a webhook, never its URL."""
from __future__ import annotations

from shared.settings import Settings

MAIN_WEBHOOK, HEALTH_WEBHOOK = "main", "health"
WEBHOOKS = (MAIN_WEBHOOK, HEALTH_WEBHOOK)
# Webhook name -> the setting holding its URL.
SETTING = {MAIN_WEBHOOK: "discord_webhook_url", HEALTH_WEBHOOK: "discord_health_webhook_url"}


def webhook_url(settings: Settings, name: str) -> str | None:
    """The configured URL of a webhook name; None when unset (dry run) or unknown."""
    field = SETTING.get(name)
    secret = getattr(settings, field) if field else None
    return secret.get_secret_value() if secret is not None else None


def setting_name(name: str) -> str:
    """The environment variable an operator fixes, e.g. `DISCORD_WEBHOOK_URL`."""
    return SETTING[name].upper()
