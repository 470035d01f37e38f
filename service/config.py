"""The one Settings class: every environment variable tunegate reads.

Built once in `main()` (or by a test) and passed down; nothing reads the environment at import.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.domain.webhooks.targets import Network, parse_networks
from service.redis_url import parse_sentinel_url

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
MIN_ADMIN_TOKEN_CHARS = 32


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", populate_by_name=True
    )

    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str = Field(
        default=OPENAI_DEFAULT_BASE_URL, validation_alias=_env("OPENAI_BASE_URL")
    )
    openai_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("OPENAI_WEBHOOK_SECRET")
    )
    redis_url: str | None = Field(default=None, validation_alias=_env("REDIS_URL"))
    redis_namespace: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9_-]{0,48}$",
        validation_alias=_env("TUNEGATE_REDIS_NAMESPACE"),
    )
    admin_token: SecretStr | None = Field(
        default=None, validation_alias=_env("TUNEGATE_ADMIN_TOKEN")
    )
    data_dir: Path = Field(
        default=Path("./.tunegate/data"), validation_alias=_env("TUNEGATE_DATA_DIR")
    )
    # where dataset bytes live: file:///path (default: data_dir) or s3://bucket/prefix
    storage_url: str | None = Field(default=None, validation_alias=_env("TUNEGATE_STORAGE_URL"))
    host: str = Field(default="127.0.0.1", validation_alias=_env("TUNEGATE_HOST"))
    port: int = Field(default=8080, ge=0, le=65535, validation_alias=_env("TUNEGATE_PORT"))
    log_format: Literal["json", "console"] | None = Field(
        default=None, validation_alias=_env("TUNEGATE_LOG_FORMAT")
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", validation_alias=_env("TUNEGATE_LOG_LEVEL")
    )
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024, gt=0, validation_alias=_env("TUNEGATE_MAX_UPLOAD_BYTES")
    )
    max_json_body_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, validation_alias=_env("TUNEGATE_MAX_JSON_BODY_BYTES")
    )
    pii_max_scan_chars: int = Field(
        default=12 * 1024 * 1024, gt=0, validation_alias=_env("TUNEGATE_PII_MAX_SCAN_CHARS")
    )
    pii_max_findings: int = Field(
        default=2_000, gt=0, validation_alias=_env("TUNEGATE_PII_MAX_FINDINGS")
    )
    pii_thread_bytes: int = Field(
        default=32 * 1024, ge=0, validation_alias=_env("TUNEGATE_PII_THREAD_BYTES")
    )
    http_limit_concurrency: int = Field(
        default=1000, gt=0, validation_alias=_env("TUNEGATE_HTTP_LIMIT_CONCURRENCY")
    )
    http_keep_alive_seconds: int = Field(
        default=5, gt=0, le=300, validation_alias=_env("TUNEGATE_HTTP_KEEP_ALIVE_SECONDS")
    )
    http_max_head_bytes: int = Field(
        default=64 * 1024, ge=4096, validation_alias=_env("TUNEGATE_HTTP_MAX_HEAD_BYTES")
    )
    audit_retention_days: int = Field(
        default=400, gt=0, validation_alias=_env("TUNEGATE_AUDIT_RETENTION_DAYS")
    )
    upstream_timeout_seconds: float = Field(
        default=600.0, gt=0, validation_alias=_env("TUNEGATE_UPSTREAM_TIMEOUT")
    )
    upstream_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, validation_alias=_env("TUNEGATE_UPSTREAM_CONNECT_TIMEOUT")
    )
    upstream_max_retries: int = Field(
        default=2, ge=0, le=10, validation_alias=_env("TUNEGATE_UPSTREAM_MAX_RETRIES")
    )
    upstream_rpm: int = Field(
        default=300, ge=1, le=100_000, validation_alias=_env("TUNEGATE_UPSTREAM_RPM")
    )
    sweep_seconds: float = Field(
        default=30.0, gt=0, validation_alias=_env("TUNEGATE_SWEEP_SECONDS")
    )
    budget_lease_usd: float = Field(
        default=1.0, ge=0, le=1000, validation_alias=_env("TUNEGATE_BUDGET_LEASE_USD")
    )
    caller_cache_seconds: float = Field(
        default=1.0, gt=0, le=60, validation_alias=_env("TUNEGATE_CALLER_CACHE_SECONDS")
    )
    webhook_allow_networks: str = Field(
        default="", validation_alias=_env("TUNEGATE_WEBHOOK_ALLOW_NETWORKS")
    )
    webhook_retry_scale: float = Field(
        default=1.0, gt=0, le=1, validation_alias=_env("TUNEGATE_WEBHOOK_RETRY_SCALE")
    )
    prices_file: Path | None = Field(default=None, validation_alias=_env("TUNEGATE_PRICES_FILE"))
    secret_key: SecretStr | None = Field(default=None, validation_alias=_env("TUNEGATE_SECRET_KEY"))

    @field_validator("openai_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator(
        "openai_api_key", "admin_token", "openai_webhook_secret", "secret_key", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("webhook_allow_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("admin_token")
    @classmethod
    def _long_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_TOKEN_CHARS:
            raise ValueError(f"must be at least {MIN_ADMIN_TOKEN_CHARS} characters")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        schemes = ("redis://", "rediss://", "unix://", "embedded://")  # embedded: in-process
        if value is not None and value.startswith("redis+sentinel://"):
            parse_sentinel_url(value)  # a ValueError names what is wrong
        elif value is not None and not value.startswith(schemes):
            raise ValueError("must be a redis://, rediss://, unix:// or redis+sentinel:// URL")
        return value or None

    @field_validator("storage_url")
    @classmethod
    def _storage_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("file:///", "s3://")):
            raise ValueError("must be a file:///path or s3://bucket/prefix URL")
        if value and value.startswith("s3://") and not value.removeprefix("s3://").strip("/"):
            raise ValueError("must name a bucket: s3://bucket/prefix")
        return value or None

    @property
    def storage(self) -> str:
        """The dataset store's URL: TUNEGATE_STORAGE_URL, else TUNEGATE_DATA_DIR as file://."""
        return self.storage_url or self.data_dir.resolve().as_uri()

    @property
    def local_data_dir(self) -> Path | None:
        """The folder holding dataset bytes, when they are on local disk."""
        if self.storage.startswith("file://"):
            return Path(urlsplit(self.storage).path)
        return None

    @property
    def embedded(self) -> bool:
        """No REDIS_URL: fakeredis in-process and worker threads in the same process."""
        return self.redis_url is None

    @property
    def webhook_networks(self) -> tuple[Network, ...]:
        """Private networks the org's callbacks may reach (`TUNEGATE_WEBHOOK_ALLOW_NETWORKS`)."""
        return parse_networks(self.webhook_allow_networks)

    def secret_values(self) -> list[str]:
        """The configured secrets, for the log scrubber."""
        secrets = (self.openai_api_key, self.admin_token, self.openai_webhook_secret)
        return [secret.get_secret_value() for secret in (*secrets, self.secret_key) if secret]

    @property
    def sandbox(self) -> bool:
        """No OPENAI_API_KEY: the built-in sandbox upstream answers instead of OpenAI."""
        return self.openai_api_key is None


def describe_error(error: ValidationError) -> str:
    """One line naming each bad variable, for start-up failures."""
    parts = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        parts.append(f"{name}: {item['msg']}")
    return "; ".join(parts)


SECRET_FILE_VARIABLES = (
    "OPENAI_API_KEY",
    "TUNEGATE_ADMIN_TOKEN",
    "TUNEGATE_SECRET_KEY",
    "OPENAI_WEBHOOK_SECRET",
)


def secrets_from_files() -> dict[str, str]:
    """`<NAME>_FILE` variants of the secrets: read from a file (Docker, Kubernetes secrets)."""
    found: dict[str, str] = {}
    for name in SECRET_FILE_VARIABLES:
        path = os.environ.get(f"{name}_FILE")
        if not path:
            continue
        if os.environ.get(name):
            raise ValueError(f"{name}_FILE: set {name} or {name}_FILE, not both")
        try:
            found[name] = Path(path).read_text().strip()
        except OSError as error:
            raise ValueError(f"{name}_FILE: cannot read {path} ({error.strerror})") from None
    return found


def load_settings() -> Settings:
    """Settings from the environment, or exit with one clear line."""
    try:
        return Settings(**secrets_from_files())
    except ValidationError as error:
        problem = describe_error(error)
    except ValueError as error:
        problem = str(error)
    print(f"tunegate: configuration error: {problem}", file=sys.stderr)
    raise SystemExit(2)
