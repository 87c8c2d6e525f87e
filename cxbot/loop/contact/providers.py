"""Senders for each contact provider over httpx (design.md §7, §9).

Each sender makes exactly one HTTP request and maps the answer the same way, so the outbox owns
retrying: 2xx is sent (with the provider's message id); 429, 5xx, timeouts and connection failures
raise :class:`TransientDeliveryError` (with the provider's Retry-After); any other 4xx raises
:class:`PermanentDeliveryError` whose message is what the card shows (`400 invalid email`).
Every request carries the contact's idempotency key in the way the provider understands, so a
redelivery after a crash is recognised by providers that deduplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from cxbot.loop.contact.options import (
    ContactProvider,
    MailgunProvider,
    SendGridProvider,
    TwilioProvider,
    WebhookProvider,
)
from cxbot.outbox.contract import PermanentDeliveryError, TransientDeliveryError

USER_AGENT = "cxbot-contact/1"
MAX_DETAIL = 200


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """What to send, as the outbox row holds it; `to` is None for a webhook."""

    channel: str
    to: str | None
    subject: str
    body: str
    idempotency_key: str
    case_ref: str
    team: str
    purpose: str
    customer: dict[str, Any]


def _secret(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise PermanentDeliveryError(
            "missing_credentials", f"{name} is not set on the server", scope="credentials"
        )
    return value


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds, from either of its forms (a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _detail(response: httpx.Response) -> str:
    """The provider's own reason, from the shapes SendGrid, Mailgun, Twilio and most webhooks use."""
    try:
        data = response.json()
    except ValueError:
        data = None
    text = ""
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text = str(errors[0].get("message") or "")
        text = text or str(data.get("message") or data.get("error") or "")
    if not text:
        text = response.reason_phrase or ""
    return " ".join(text.split())[:MAX_DETAIL]


async def _post(provider: Any, name: str, request: dict[str, Any]) -> httpx.Response:
    """One POST; network failures and timeouts become transient errors."""
    try:
        async with httpx.AsyncClient(timeout=provider.timeout, headers={"User-Agent": USER_AGENT}) as http:
            response = await http.post(**request)
    except httpx.TimeoutException as error:
        raise TransientDeliveryError(f"{name} timed out ({type(error).__name__})") from None
    except httpx.TransportError as error:
        raise TransientDeliveryError(f"{name} unreachable ({type(error).__name__}: {error})") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientDeliveryError(
            f"{response.status_code} {_detail(response)}".strip(),
            retry_after=retry_after(response.headers.get("retry-after")),
        )
    if response.status_code >= 400:
        code = str(response.status_code)
        scope = "credentials" if response.status_code in (401, 403) else "message"
        raise PermanentDeliveryError(code, f"{code} {_detail(response)}".strip(), scope=scope)
    return response


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _sender(name: str | None, email: str) -> str:
    return f"{name} <{email}>" if name else email


async def send_sendgrid(provider: SendGridProvider, message: OutgoingMessage, env: Mapping[str, str]) -> str:
    key = _secret(env, provider.api_key_env)
    sender: dict[str, str] = {"email": provider.from_email}
    if provider.from_name:
        sender["name"] = provider.from_name
    body = {
        "personalizations": [{"to": [{"email": message.to}]}],
        "from": sender,
        "subject": message.subject,
        "content": [{"type": "text/plain", "value": message.body}],
        "custom_args": {"case_ref": message.case_ref, "idempotency_key": message.idempotency_key},
    }
    response = await _post(
        provider,
        "sendgrid",
        {
            "url": f"{provider.base_url}/v3/mail/send",
            "json": body,
            "headers": {"Authorization": f"Bearer {key}", "Idempotency-Key": message.idempotency_key},
        },
    )
    return response.headers.get("x-message-id") or ""


async def send_mailgun(provider: MailgunProvider, message: OutgoingMessage, env: Mapping[str, str]) -> str:
    key = _secret(env, provider.api_key_env)
    response = await _post(
        provider,
        "mailgun",
        {
            "url": f"{provider.base_url}/v3/{provider.domain}/messages",
            "data": {
                "from": _sender(provider.from_name, provider.from_email),
                "to": message.to or "",
                "subject": message.subject,
                "text": message.body,
                "v:case_ref": message.case_ref,
                "h:Idempotency-Key": message.idempotency_key,
            },
            "auth": ("api", key),
        },
    )
    return str(_json(response).get("id") or "")


async def send_twilio(provider: TwilioProvider, message: OutgoingMessage, env: Mapping[str, str]) -> str:
    token = _secret(env, provider.auth_token_env)
    response = await _post(
        provider,
        "twilio",
        {
            "url": f"{provider.base_url}/2010-04-01/Accounts/{provider.account_sid}/Messages.json",
            "data": {"To": message.to or "", "From": provider.from_number, "Body": message.body},
            "auth": (provider.account_sid, token),
            "headers": {"I-Twilio-Idempotency-Token": message.idempotency_key},
        },
    )
    return str(_json(response).get("sid") or "")


def webhook_body(message: OutgoingMessage) -> bytes:
    """The JSON a helpdesk receives; the signature is over exactly these bytes."""
    document = {
        "event": f"cxbot.{message.purpose}",
        "idempotency_key": message.idempotency_key,
        "case": {"ref": message.case_ref, "team": message.team},
        "customer": message.customer,
        "subject": message.subject,
        "body": message.body,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>`, as GitHub and most helpdesks verify it."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


async def send_webhook(provider: WebhookProvider, message: OutgoingMessage, env: Mapping[str, str]) -> str:
    secret = _secret(env, provider.secret_env)
    body = webhook_body(message)
    response = await _post(
        provider,
        "webhook",
        {
            "url": provider.url,
            "content": body,
            "headers": {
                "Content-Type": "application/json",
                provider.signature_header: signature(secret, body),
                "Idempotency-Key": message.idempotency_key,
            },
        },
    )
    data = _json(response)
    return str(data.get("id") or data.get("ticket_id") or "")


async def send(provider: ContactProvider, message: OutgoingMessage, *, env: Mapping[str, str]) -> str:
    """Send through the configured provider; returns the provider's message id ('' if it gave none)."""
    if isinstance(provider, SendGridProvider):
        return await send_sendgrid(provider, message, env)
    if isinstance(provider, MailgunProvider):
        return await send_mailgun(provider, message, env)
    if isinstance(provider, TwilioProvider):
        return await send_twilio(provider, message, env)
    return await send_webhook(provider, message, env)
