"""What the re-survey, reveal and erasure tests share: a negative answer with a customer, and the link."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select

from cxbot.authz import Actor
from cxbot.commands.dispatch import Reply, Where, run_text
from cxbot.config import Config, parse_config
from cxbot.models import OutboxMessage
from cxbot.runtime import Runtime

SECRET = "test-secret-key-for-resurvey-links-0123"
MANAGER, AGENT, OUTSIDER, ADMIN = "U0SUPMGR1", "U0SUPAGT1", "U0LOGAGT1", "U0ADMIN01"
ADA = {
    "id": "cust-ada",
    "name": "Ada Lovelace",
    "email": "ada.lovelace@example.org",
    "phone": "+44 20 7946 0123",
}
LINK = re.compile(r"https?://\S+/r/(\S+?)(?= |$)")


async def negative_case(
    http: httpx.AsyncClient,
    *,
    external_id: str = "neg-1",
    customer: dict[str, Any] | None = None,
    metric: str = "csat",
    score: float = 1,
    touchpoint: str = "Inbound",
    comment: str | None = "Nobody called me back",
) -> int:
    """POST a negative answer through the real ingest and return its case id."""
    item: dict[str, Any] = {
        "external_id": external_id,
        "source": "survey",
        "metric": metric,
        "score": score,
        "touchpoint": touchpoint,
        "comment": comment,
    }
    if customer is not None:
        item["customer"] = customer
    response = await http.post("/feedback", json=item)
    assert response.status_code == 200, response.text
    return int(response.json()["results"][0]["case"].removeprefix("CX-"))


async def say(runtime: Runtime, text: str, *, user: str = AGENT) -> Reply:
    """Type a command as a person on Slack, through the one grammar and dispatcher."""
    return await run_text(
        runtime, text, actor=Actor(user_id=user, platform="slack"), where=Where("slack", "C0SUPPORT1")
    )


async def link_tokens(runtime: Runtime) -> list[str]:
    """The tokens of every re-survey link queued to customers, oldest first."""
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.payload).where(OutboxMessage.kind == "contact").order_by(OutboxMessage.id)
        )
        bodies = [payload.get("body") or payload.get("text") or "" for payload in rows.scalars()]
    return [m.group(1) for body in bodies for m in [LINK.search(body)] if m]


def with_contact(config: Config, *, email_url: str = "http://127.0.0.1:9", **resurvey: Any) -> Config:
    """The example config with email and SMS providers for every team (at `email_url`, a loopback fake
    when a test delivers), and global `resurvey` settings."""
    raw = config.model_dump(mode="json", exclude_none=True)
    raw["contact_providers"] = {
        "mail": {"type": "sendgrid", "base_url": email_url, "from_email": "care@example.com"},
        "texts": {
            "type": "twilio",
            "base_url": email_url,
            "account_sid": "AC123",
            "from_number": "+15550000",
        },
    }
    for team in raw["teams"]:
        team["contact"] = {"email": "mail", "sms": "texts"}
    if resurvey:
        raw["resurvey"] = {**raw.get("resurvey", {}), **resurvey}
    return parse_config(raw, source="test")
