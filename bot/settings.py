"""Settings from environment variables, with local defaults for development."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_DIR = PROJECT_DIR / "instance"
TELEGRAM_DEFAULT_API = "https://api.telegram.org/bot"
TWILIO_DEFAULT_API = "https://api.twilio.com"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads; see README and .env.example for their meaning."""

    database_url: str
    secret_key: str
    encryption_keys: tuple[str, ...]
    hash_key: str
    instance_dir: Path = DEFAULT_INSTANCE_DIR
    public_base_url: str = "http://127.0.0.1:5000"
    telegram_bot_token: str = ""
    telegram_webhook_secret: str = ""
    telegram_api_base_url: str = TELEGRAM_DEFAULT_API
    telegram_bot_username: str = ""  # without the @, for campaign deep links (t.me/<name>)
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
    twilio_messaging_service_sid: str = ""
    twilio_api_base_url: str = TWILIO_DEFAULT_API
    max_request_bytes: int = 256 * 1024
    storage_dir: Path = DEFAULT_INSTANCE_DIR / "attachments"
    production: bool = False
    # Outbound webhooks (bot/notify.py): each URL with its whsec_ secret(s), space-separated
    # while a secret is being rotated; both endpoints are synced into the database at start-up.
    notify_prioritisation_url: str = ""
    notify_prioritisation_secret: str = ""
    notify_legal_url: str = ""
    notify_legal_secret: str = ""
    notify_allow_private: bool = False  # allow loopback/private targets (local set-ups, tests)
    routing_file: Path = PROJECT_DIR / "data" / "routing.csv"
    retention_days: int = 365  # `raporto purge` erases closed cases older than this
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def telegram_enabled(self) -> bool:
        """Telegram is on when a bot token and a webhook secret are set."""
        return bool(self.telegram_bot_token and self.telegram_webhook_secret)

    @property
    def twilio_enabled(self) -> bool:
        """SMS is on when Twilio credentials and a sender are set."""
        return bool(
            self.twilio_account_sid
            and self.twilio_auth_token
            and (self.twilio_from_number or self.twilio_messaging_service_sid)
        )

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed (tests pass their own)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        return replace(self, **changes)


def _dev_secrets(instance_dir: Path) -> dict[str, str]:
    """Development secrets kept in instance/secrets.json, generated on first start."""
    path = instance_dir / "secrets.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return data
    instance_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "SECRET_KEY": secrets.token_urlsafe(32),
        "RAPORTO_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "RAPORTO_HASH_KEY": secrets.token_urlsafe(32),
    }
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return data


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; development secrets are generated when missing."""
    env = os.environ if env is None else env
    production = env.get("RAPORTO_ENV", "development") == "production"
    instance_dir = Path(env.get("RAPORTO_INSTANCE_DIR", str(DEFAULT_INSTANCE_DIR)))
    secret_names = ("SECRET_KEY", "RAPORTO_ENCRYPTION_KEYS", "RAPORTO_HASH_KEY")
    missing = [name for name in secret_names if not env.get(name)]
    generated: dict[str, str] = {}
    if missing:
        if production:
            raise SettingsError(
                f"{', '.join(missing)} must be set when RAPORTO_ENV=production (see .env.example)"
            )
        generated = _dev_secrets(instance_dir)

    def get(name: str, default: str = "") -> str:
        return env.get(name) or generated.get(name) or default

    keys = tuple(k.strip() for k in get("RAPORTO_ENCRYPTION_KEYS").split(",") if k.strip())
    for key in keys:
        try:
            Fernet(key.encode())
        except ValueError as exc:
            raise SettingsError(
                "RAPORTO_ENCRYPTION_KEYS holds a value that is not a Fernet key "
                "(make one with: raporto keys generate)"
            ) from exc
    database_url = get("DATABASE_URL", f"sqlite:///{instance_dir / 'raporto.db'}")
    try:
        max_bytes = int(get("RAPORTO_MAX_REQUEST_BYTES", str(256 * 1024)))
    except ValueError as exc:
        raise SettingsError("RAPORTO_MAX_REQUEST_BYTES must be a whole number") from exc
    try:
        retention_days = int(get("RAPORTO_RETENTION_DAYS", "365"))
    except ValueError as exc:
        raise SettingsError("RAPORTO_RETENTION_DAYS must be a whole number") from exc
    return Settings(
        database_url=database_url,
        secret_key=get("SECRET_KEY"),
        encryption_keys=keys,
        hash_key=get("RAPORTO_HASH_KEY"),
        instance_dir=instance_dir,
        public_base_url=get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        telegram_bot_token=get("TELEGRAM_BOT_TOKEN"),
        telegram_webhook_secret=get("TELEGRAM_WEBHOOK_SECRET"),
        telegram_api_base_url=get("TELEGRAM_API_BASE_URL", TELEGRAM_DEFAULT_API),
        telegram_bot_username=get("TELEGRAM_BOT_USERNAME").lstrip("@"),
        twilio_account_sid=get("TWILIO_ACCOUNT_SID"),
        twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
        twilio_from_number=get("TWILIO_FROM_NUMBER"),
        twilio_messaging_service_sid=get("TWILIO_MESSAGING_SERVICE_SID"),
        twilio_api_base_url=get("TWILIO_API_BASE_URL", TWILIO_DEFAULT_API).rstrip("/"),
        max_request_bytes=max_bytes,
        storage_dir=Path(get("RAPORTO_STORAGE_DIR", str(instance_dir / "attachments"))),
        production=production,
        notify_prioritisation_url=get("NOTIFY_PRIORITISATION_URL").strip(),
        notify_prioritisation_secret=get("NOTIFY_PRIORITISATION_SECRET").strip(),
        notify_legal_url=get("NOTIFY_LEGAL_URL").strip(),
        notify_legal_secret=get("NOTIFY_LEGAL_SECRET").strip(),
        notify_allow_private=get("NOTIFY_ALLOW_PRIVATE").strip().lower() in ("1", "true", "yes"),
        routing_file=Path(get("RAPORTO_ROUTING_FILE", str(PROJECT_DIR / "data" / "routing.csv"))),
        retention_days=retention_days,
    )
