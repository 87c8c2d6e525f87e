"""Builds the Bolt AsyncApp and its route, or nothing (with one log line) when Slack is not configured.

Listeners are registered explicitly, module by module (`register(app, deps)`), as in Slack's
bolt-python starter template, so what the app answers is readable in one place.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cxbot.limits import parse_unix_seconds
from cxbot.runtime import Runtime
from handlers.slack import actions, commands, events
from handlers.slack.client import SlackClient, build_web_client
from handlers.slack.deps import SlackDeps
from handlers.slack.markup import use_people
from handlers.slack.notifier import SlackNotifier

log = logging.getLogger("handlers.slack")
EVENTS_PATH = "/slack/events"
#: Bolt's own signature check logs the whole body of a request it refuses (issue #11).
BOLT_VERIFICATION_LOGGERS = ("slack_bolt.AsyncRequestVerification", "slack_bolt.RequestVerification")


class NoRejectedBodies(logging.Filter):
    """Replaces Bolt's "Invalid request signature detected (... body: ...)" with a short reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Invalid request signature"):
            record.msg, record.args = "refused a request whose Slack signature is not valid", ()
        return True


NO_REJECTED_BODIES = NoRejectedBodies()


def unsigned_reason(request: Request, body: bytes, verifier: SignatureVerifier) -> tuple[int, str] | None:
    """Why a request to /slack/events is refused before Bolt sees it (status, short reason), or None.

    Checked here so that no malformed header or body reaches Bolt's parser or its logger: a
    timestamp that is not a number, a body that is not UTF-8, a signature that does not match.
    """
    stamp = request.headers.get("x-slack-request-timestamp")
    signature = request.headers.get("x-slack-signature") or ""
    if parse_unix_seconds(stamp) is None:
        return 401, "X-Slack-Request-Timestamp is missing or not a Unix timestamp"
    if not signature.isascii():
        return 401, "X-Slack-Signature is not a Slack signature"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return 400, "body is not UTF-8 text"
    if not verifier.is_valid(body=text, timestamp=stamp, signature=signature):
        return 401, "the Slack signature is missing, expired or does not match"
    try:
        parse_body(text, request.headers.get("content-type"))
    except ValueError:
        return 400, "body is not a Slack payload"
    return None


def missing_settings(runtime: Runtime) -> list[str]:
    """The variables HTTP mode needs that are not set."""
    settings = runtime.settings
    wanted = {
        "SLACK_SIGNING_SECRET": settings.slack_signing_secret,
        "SLACK_BOT_TOKEN": settings.slack_bot_token,
    }
    return [name for name, value in wanted.items() if not value]


def build_client(runtime: Runtime, *, interactive: bool) -> SlackClient:
    """The Web API client: `interactive` for the calls users wait on (quick retries), not for the outbox."""
    settings = runtime.settings
    assert settings.slack_bot_token
    web = build_web_client(settings.slack_bot_token, base_url=settings.slack_api_url, interactive=interactive)
    client = SlackClient(web)
    runtime.closers.append(client.aclose)
    return client


def render_people(runtime: Runtime) -> None:
    """Person tokens become mentions of each person's Slack id in the running config."""
    use_people(lambda ident: runtime.config.platform_id(ident, "slack"))


def build_app(runtime: Runtime, client: SlackClient) -> AsyncApp:
    """The Bolt app: signatures verified (Bolt's check on), answered when the listener returns."""
    render_people(runtime)
    app = AsyncApp(
        client=client.web,
        # Socket Mode needs no signing secret (Bolt skips the check for its requests); HTTP mode does.
        signing_secret=runtime.settings.slack_signing_secret or "",
        request_verification_enabled=True,
        # HTTP mode: Bolt answers when the listener returns. Commands and clicks ack and hand their
        # work to `runtime.background`, so Slack has its answer at once; shutdown drains that work
        # (handlers.platform_services), so none is lost when a replica stops. Modal submissions and
        # modal openings run before the answer (field errors, the trigger_id's 3 seconds).
        process_before_response=True,
        logger=logging.getLogger("slack_bolt"),
    )
    for name in BOLT_VERIFICATION_LOGGERS:
        logging.getLogger(name).addFilter(NO_REJECTED_BODIES)
    deps = SlackDeps(runtime=runtime, client=client)
    commands.register(app, deps)
    actions.register(app, deps)
    events.register(app, deps)
    return app


def slack_routes(runtime: Runtime) -> list[Route]:
    """`POST /slack/events` when Slack is configured; otherwise no route and one line saying why."""
    missing = missing_settings(runtime)
    if missing:
        log.info(
            "Slack is off: %s not set (set both SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)", ", ".join(missing)
        )
        return []
    handler = AsyncSlackRequestHandler(build_app(runtime, build_client(runtime, interactive=True)))
    verifier = SignatureVerifier(runtime.settings.slack_signing_secret or "")

    async def slack_events(request: Request) -> Response:
        # The body limit (cxbot.web.common.BodyLimit) has already bounded what this reads.
        refusal = unsigned_reason(request, await request.body(), verifier)
        if refusal is not None:
            status, reason = refusal
            log.info("refused a request to %s: %s", EVENTS_PATH, reason)
            return JSONResponse({"error": reason}, status_code=status)
        return await handler.handle(request)

    return [Route(EVENTS_PATH, slack_events, methods=["POST"])]


def slack_notifier(runtime: Runtime) -> SlackNotifier | None:
    """The outbox's way to Slack; only the bot token is needed to post."""
    if not runtime.settings.slack_bot_token:
        return None
    render_people(runtime)
    return SlackNotifier(build_client(runtime, interactive=False))


@asynccontextmanager
async def open_socket_mode(handler: AsyncSocketModeHandler) -> AsyncIterator[None]:
    await handler.connect_async()
    log.info("Slack Socket Mode connected")
    try:
        yield
    finally:
        await handler.close_async()


def socket_mode(runtime: Runtime) -> AbstractAsyncContextManager[None] | None:
    """The Socket Mode connection `serve` keeps open, when SLACK_APP_TOKEN is set."""
    handler = socket_mode_handler(runtime)
    return open_socket_mode(handler) if handler is not None else None


def socket_mode_handler(runtime: Runtime) -> AsyncSocketModeHandler | None:
    """Socket Mode (a WebSocket to Slack, no public URL) when SLACK_APP_TOKEN is set, beside HTTP mode."""
    settings = runtime.settings
    if not settings.slack_app_token:
        return None
    if not settings.slack_bot_token:
        log.warning("SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not: Socket Mode stays off")
        return None
    app = build_app(runtime, build_client(runtime, interactive=True))
    return AsyncSocketModeHandler(app, settings.slack_app_token)
