"""Deployment settings and secrets, read from the environment and `.env` (design.md §4).

Everything about *behaviour* lives in `cxbot.yaml` (see :mod:`cxbot.config`); this module only holds
what differs between deployments: credentials, URLs, the database and the port.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cxbot.limits import DEFAULT_MAX_BODY_BYTES

DEFAULT_DATABASE_URL = "sqlite:///cxbot.db"


class MissingSetting(RuntimeError):
    """A required environment variable is not set; the message names it and says what to do."""


class Settings(BaseSettings):
    """Environment variables, each documented in `.env.example`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    cxbot_config: Path = Field(default=Path("cxbot.yaml"), alias="CXBOT_CONFIG")
    cxbot_api_key: str | None = Field(default=None, alias="CXBOT_API_KEY")
    port: int = Field(default=3000, alias="PORT")
    host: str = Field(default="127.0.0.1", alias="HOST")
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, alias="CXBOT_MAX_BODY_BYTES")
    public_url: str = Field(default="http://localhost:3000", alias="CXBOT_PUBLIC_URL")
    #: Signs re-survey links (HMAC-SHA256); without it no link can be made or checked.
    secret_key: str | None = Field(default=None, alias="CXBOT_SECRET_KEY")

    slack_bot_token: str | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")

    teams_app_id: str | None = Field(default=None, alias="TEAMS_APP_ID")
    teams_app_password: str | None = Field(default=None, alias="TEAMS_APP_PASSWORD")
    teams_tenant_id: str | None = Field(default=None, alias="TEAMS_TENANT_ID")
    teams_openid_metadata_url: str = Field(
        default="https://login.botframework.com/v1/.well-known/openidconfiguration",
        alias="TEAMS_OPENID_METADATA_URL",
    )
    teams_login_url: str = Field(default="https://login.microsoftonline.com", alias="TEAMS_LOGIN_URL")
    teams_service_url: str = Field(
        default="https://smba.trafficmanager.net/teams/", alias="TEAMS_SERVICE_URL"
    )

    def require(self, name: str, why: str) -> str:
        """Return a setting by its variable name, or raise MissingSetting explaining what to set."""
        for field_name, info in type(self).model_fields.items():
            if info.alias == name:
                value = getattr(self, field_name)
                if value:
                    return str(value)
                raise MissingSetting(f"{name} is not set: {why}. Set it in the environment or in .env.")
        raise KeyError(name)


def load_settings(env_file: str | Path | None = ".env") -> Settings:
    """Read settings (`env_file=None` ignores `.env`); bad values raise MissingSetting naming the variable."""
    try:
        return Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            problems.append(f"{name}={error.get('input')!r}: {error['msg']}")
        raise MissingSetting("invalid environment: " + "; ".join(problems)) from None
