"""The command line (design.md §11): `python bot.py <verb>`.

Exit status 0 on success, 2 on bad usage or configuration, 1 on any other failure; messages go to
stderr. Platform packages are passed in by `bot.py` so this module never imports a chat library.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cxbot.config import Config, ConfigError, load_config
from cxbot.observability import watch_collections
from cxbot.platform import Platform
from cxbot.settings import MissingSetting, Settings, load_settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

# The chat platforms (handlers/*/platform.py), imported when `serve` calls this.
PlatformLoader = Callable[[], Sequence[Platform]]
# The shell adapter (handlers/console): runs the prompt on a prepared runtime, driving coroutines with
# `run`; returns the exit status. Called as console(runtime, run=, user=, clock=, demo=).
PlatformConsole = Callable[..., int]
# The Slack app manifest with the configured brand (handlers/slack/manifest.py):
# manifest(config, socket_mode=, public_url=) -> YAML text.
PlatformManifest = Callable[..., str]
# The Teams app package with the configured brand (handlers/teams/manifest.py):
# package(config, app_id=, public_url=) -> zip bytes.
PlatformPackage = Callable[..., bytes]
TEAMS_PACKAGE = "cxbot-teams.zip"
DEMO_DATABASE = "cxbot-demo.db"
#: Modules that come with an extra of pyproject.toml (the console needs none of them), and which extra.
EXTRA_OF = {
    "starlette": "serve",
    "uvicorn": "serve",
    "apscheduler": "serve",
    "slack_bolt": "serve",
    "slack_sdk": "serve",
    "aiohttp": "serve",
    "jwt": "serve",
    "asyncpg": "postgres",
}
EXAMPLE_CONFIG = "cxbot.example.yaml"


class UsageError(Exception):
    """Bad arguments; exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit itself; we want our exit codes
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bot.py", description="cxbot: CX scores, case routing and recovery in chat.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    verbs.add_parser("serve", help="run the HTTP app (Slack, Teams, ingest, API), scheduler and outbox")

    check = verbs.add_parser("check-config", help="validate a cxbot.yaml without starting")
    check.add_argument("file", nargs="?", help="config file (default: $CXBOT_CONFIG or cxbot.yaml)")

    db = verbs.add_parser("db", help="database maintenance")
    db_verbs = db.add_subparsers(dest="db_verb", required=True, parser_class=_Parser)
    db_verbs.add_parser("upgrade", help="apply the schema migrations")

    imp = verbs.add_parser("import", help="import feedback from a CSV file")
    imp.add_argument("file", type=Path, help="the CSV file (UTF-8, header row first)")
    imp.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="take a feedback field from a CSV column (fields: external_id, source, metric, score, comment, "
        "touchpoint, received_at, customer_id, customer_name, customer_email, customer_phone, tags)",
    )
    imp.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="give every row a fixed value"
    )
    imp.add_argument("--source", help="source name for every row (default: csv:<file name>)")
    imp.add_argument("--date-format", help="strptime format of received_at when it is not ISO 8601")
    imp.add_argument("--batch-size", type=int, default=10_000, help="rows per transaction (default 10000)")
    imp.add_argument(
        "--no-cases", action="store_true", help="store history without opening cases for negative rows"
    )
    imp.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    sync = verbs.add_parser(
        "sync", help="pull a provider's recent ratings over its API and ingest what is missing"
    )
    sync.add_argument(
        "provider", help="zendesk, intercom, surveymonkey or qualtrics (configured under webhooks.<provider>)"
    )
    sync.add_argument("--since", default="7d", help="how far back to pull, e.g. 7d, 36h (default 7d)")
    sync.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    console = verbs.add_parser("console", help="the shell chat adapter: /cx commands at a prompt")
    console.add_argument(
        "--demo",
        action="store_true",
        help=f"first seed a fresh demo database (./{DEMO_DATABASE}, rebuilt each time) with 60 days of data",
    )
    console.add_argument(
        "--as",
        dest="user",
        metavar="PERSON",
        help="act as this person: a people key or one of their ids (default: the config's first admin)",
    )
    console.add_argument("--db", type=Path, help=f"demo database file (default: ./{DEMO_DATABASE})")
    console.add_argument(
        "--config", help=f"config file (default: $CXBOT_CONFIG; with --demo, {EXAMPLE_CONFIG})"
    )

    manifest = verbs.add_parser(
        "slack-manifest", help="print the Slack app manifest with the brand's name, to create the app from"
    )
    manifest.add_argument("--socket-mode", action="store_true", help="the Socket Mode manifest (no URLs)")
    manifest.add_argument("--url", help="the public address, for https://cxbot.example.com (HTTP mode)")
    manifest.add_argument("--config", help="config file (default: $CXBOT_CONFIG or cxbot.yaml)")

    package = verbs.add_parser(
        "teams-manifest", help="write the Teams app package (manifest.json and icons) to upload to Teams"
    )
    package.add_argument("--out", default=TEAMS_PACKAGE, help=f"the zip to write (default {TEAMS_PACKAGE})")
    package.add_argument("--url", help="the public https address (default: $CXBOT_PUBLIC_URL)")
    package.add_argument("--config", help="config file (default: $CXBOT_CONFIG or cxbot.yaml)")

    digest = verbs.add_parser("digest", help="build a team's daily digest; print it with --dry-run")
    digest.add_argument("--team", help="team key (default: every team)")
    digest.add_argument(
        "--date", help="local day to report, YYYY-MM-DD (default: yesterday in the team's zone)"
    )
    digest.add_argument("--dry-run", action="store_true", help="print the digest instead of posting it")
    return parser


def _config_path(settings: Settings, override: str | None = None) -> Path:
    return Path(override) if override else settings.cxbot_config


def _load(settings: Settings, override: str | None = None) -> Config:
    return load_config(_config_path(settings, override))


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        field, sep, column = value.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise UsageError(f"{option} {value!r}: expected FIELD=VALUE")
        pairs[field.strip()] = column.strip()
    return pairs


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    path = _config_path(settings, args.file)
    config = load_config(path)
    print(
        f"{path}: OK ({len(config.teams)} teams, {len(config.touchpoints)} touchpoints, "
        f"{len(config.routing.rules)} routing rules)"
    )
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from cxbot.db import upgrade_sync

    upgrade_sync(settings.database_url)
    print(f"database at {_safe_url(settings.database_url)} is up to date", file=sys.stderr)
    return EXIT_OK


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from cxbot.ingest.csv_import import ImportOptions, ImportUsageError, import_csv
    from cxbot.runtime import Runtime

    config = _load(settings)
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    options = ImportOptions(
        mapping=_pairs(args.map, "--map"),
        constants=_pairs(args.set, "--set"),
        source=args.source,
        date_format=args.date_format,
        batch_size=args.batch_size,
        open_cases=not args.no_cases,
        progress=not args.no_progress and sys.stderr.isatty(),
    )

    async def run() -> int:
        from cxbot.db import upgrade

        await upgrade(settings.database_url)
        # aiosqlite's thread: the import converts the next batch while SQLite writes the last one.
        runtime = Runtime.build(settings=settings, config=config, sqlite_in_thread=True)
        try:
            await runtime.sync_directory()
            report = await import_csv(runtime, args.file, options)
        except ImportUsageError as error:
            raise UsageError(str(error)) from None
        finally:
            await runtime.close()
        for line, reason in report.errors:
            print(f"{args.file}:{line}: {reason}", file=sys.stderr)
        print(report.summary(), file=sys.stderr)
        return EXIT_OK if report.stored or not report.rows else EXIT_FAILURE

    return asyncio.run(run())


def cmd_digest(args: argparse.Namespace, settings: Settings) -> int:
    """Print (`--dry-run`) or post a digest; posting goes through the same exactly-once claim as `serve`."""
    from datetime import date, timedelta
    from zoneinfo import ZoneInfo

    from cxbot.config import parse_duration
    from cxbot.digest import build_team_digest, render_team_digest
    from cxbot.digest.posting import claim_and_deliver, instance_name
    from cxbot.digest.schedule import local_date, parse_clock, slot_for
    from cxbot.runtime import Runtime

    config = _load(settings)
    if args.team is not None and args.team not in config.team_keys:
        raise UsageError(f"--team: {args.team!r} is not a team (teams are: {', '.join(config.team_keys)})")
    report_date: date | None = None
    if args.date is not None:
        try:
            report_date = date.fromisoformat(args.date)
        except ValueError:
            raise UsageError(f"--date: {args.date!r} is not a date (use YYYY-MM-DD)") from None
    teams = [config.team(args.team)] if args.team else list(config.teams)

    async def run() -> int:
        from cxbot.db import upgrade

        if not args.dry_run:
            await upgrade(settings.database_url)
        runtime = Runtime.build(settings=settings, config=config)
        try:
            now = runtime.clock()
            for team in teams:
                zone = ZoneInfo(team.timezone)
                day = report_date or local_date(moment=now, zone=zone) - timedelta(days=1)
                async with runtime.sessions() as session:
                    digest = await build_team_digest(
                        session, team=team, report_date=day, now=now, config=config
                    )
                if args.dry_run:
                    print(render_team_digest(digest), end="\n\n")
                    continue
                slot = slot_for(
                    scope=team.key,
                    posted_on=day + timedelta(days=1),
                    send_time=parse_clock(team.digest.time),
                    zone=zone,
                    cutoff=parse_duration(team.digest.cutoff),
                )
                outcome = await claim_and_deliver(
                    runtime, slot=slot, digest=digest, skip_quiet=False, now=now, claimed_by=instance_name()
                )
                verdict = "already sent earlier" if outcome.status == "lost" else outcome.status
                print(f"{team.key} {day.isoformat()}: {verdict}", file=sys.stderr)
        finally:
            await runtime.close()
        return EXIT_OK

    return asyncio.run(run())


def cmd_serve(args: argparse.Namespace, settings: Settings, platforms: PlatformLoader | None) -> int:
    """The HTTP app with each platform's routes, the scheduler, and the background work of
    cxbot.services (outbox worker, fetch queue, platform connections) while it runs."""
    import uvicorn

    from cxbot.runtime import Runtime
    from cxbot.services import platform_routes, serving
    from cxbot.web import create_app

    config = _load(settings)
    runtime = Runtime.build(settings=settings, config=config)
    wired = list(platforms()) if platforms else []

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        from cxbot.db import upgrade

        await upgrade(settings.database_url)
        await runtime.sync_directory()
        log = logging.getLogger("cxbot")
        if not settings.cxbot_api_key:
            log.warning("CXBOT_API_KEY is not set: POST /feedback and /api/* answer 503 until it is")
        log.info("cxbot serving on http://%s:%s", settings.host, settings.port)
        from cxbot.scheduler import Scheduler

        scheduler = Scheduler(runtime)
        scheduler.start()
        try:
            async with serving(runtime, wired):
                # What starting built (modules, mappers, config, clients) lives as long as the
                # process: frozen, no full collection scans it again (each stopped every request
                # for 0.1-0.5 s in bench/soak.py's replicas). Collections are timed for /metrics.
                gc.collect()
                gc.freeze()
                stop_watching = watch_collections(runtime.counters)
                try:
                    yield
                finally:
                    stop_watching()
        finally:
            scheduler.shutdown()
            await runtime.close()

    app = create_app(runtime, routes=platform_routes(runtime, wired), lifespan=lifespan)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
    return EXIT_OK


def _example_config() -> Path:
    """The example configuration the demo data is written for: in the working directory or the checkout."""
    for candidate in (Path.cwd() / EXAMPLE_CONFIG, Path(__file__).resolve().parent.parent / EXAMPLE_CONFIG):
        if candidate.is_file():
            return candidate
    raise UsageError(f"--demo needs {EXAMPLE_CONFIG} (in the source checkout); or pass --config FILE")


def cmd_slack_manifest(
    args: argparse.Namespace, settings: Settings, manifest: PlatformManifest | None
) -> int:
    """Print the manifest; the names come from `brand:`, the address from --url."""
    if manifest is None:
        raise UsageError("no Slack package was wired in; run `python bot.py slack-manifest`")
    config = _load(settings, args.config)
    print(manifest(config, socket_mode=args.socket_mode, public_url=args.url), end="")
    return EXIT_OK


def cmd_teams_manifest(args: argparse.Namespace, settings: Settings, package: PlatformPackage | None) -> int:
    """Write the Teams app package; the bot id from TEAMS_APP_ID, names from `brand:`, the domain from
    --url or CXBOT_PUBLIC_URL."""
    if package is None:
        raise UsageError("no Teams package was wired in; run `python bot.py teams-manifest`")
    app_id = settings.require("TEAMS_APP_ID", "the app package names the bot by its Entra app (client) id")
    public_url = args.url or settings.public_url
    if not public_url.startswith("https://"):
        print(
            f"warning: {public_url} is not https://; Teams refuses a package whose addresses are not "
            "(set CXBOT_PUBLIC_URL or pass --url https://your-host)",
            file=sys.stderr,
        )
    config = _load(settings, args.config)
    try:
        data = package(config, app_id=app_id, public_url=public_url)
    except ValueError as error:
        raise UsageError(str(error)) from None
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data):,} bytes): upload it in Teams (Apps → Manage your apps)")
    return EXIT_OK


def cmd_console(args: argparse.Namespace, settings: Settings, console: PlatformConsole | None) -> int:
    """The shell adapter; with --demo on a fresh SQLite file and a demo clock that moves on `:advance`."""
    from cxbot.clock import ManualClock
    from cxbot.db import upgrade
    from cxbot.demo import DEMO_NOW, SeedReport
    from cxbot.demo_cache import DemoSnapshots, build_demo_database, default_cache_dir, snapshot_key
    from cxbot.runtime import Runtime, system_clock

    if console is None:
        raise UsageError("no console adapter was wired in; run `python bot.py console`")
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)  # log lines would tear the conversation apart
    clock: ManualClock | None = None
    database: Path | None = None
    snapshots: DemoSnapshots | None = None
    report: SeedReport | None = None
    if args.demo:
        config = load_config(Path(args.config) if args.config else _example_config())
        database = (args.db or Path(DEMO_DATABASE)).resolve()
        # Built once per version of the code and config, then copied (cxbot.demo_cache says why).
        snapshots = DemoSnapshots(default_cache_dir())
        key = snapshot_key(config)
        started = time.perf_counter()
        report = snapshots.restore(key, database)
        if report is None:
            columns = shutil.get_terminal_size().columns - 1
            note = f"Seeding demo data into {database} (built on the first run, copied on later ones) ..."
            print(textwrap.fill(note, width=max(40, columns)), file=sys.stderr, flush=True)
            report = asyncio.run(
                build_demo_database(database, settings=settings, config=config, progress=True)
            )
            snapshots.store(key, database, report)
        else:
            report.seconds = time.perf_counter() - started
        settings = settings.model_copy(update={"database_url": f"sqlite:///{database}"})
        clock = ManualClock(DEMO_NOW)
    else:
        if args.db is not None:
            raise UsageError("--db is for --demo; set DATABASE_URL to use another database")
        config = _load(settings, args.config)
    runtime = Runtime.build(settings=settings, config=config, clock=clock or system_clock)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(upgrade(settings.database_url))
        summary = None
        if report is not None:
            how = "copied" if report.copied else "seeded"
            summary = f"{report.summary()}; {how} in {report.seconds:.1f} s into {database}"
        else:
            loop.run_until_complete(runtime.sync_directory())
        return console(runtime, run=loop.run_until_complete, user=args.user, clock=clock, demo=summary)
    finally:
        loop.run_until_complete(runtime.close())
        loop.close()


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from cxbot.config import parse_duration
    from cxbot.db import upgrade
    from cxbot.ingest.sync import SYNCABLE, SyncError, sync_provider
    from cxbot.runtime import Runtime

    config = _load(settings)
    if args.provider not in SYNCABLE:
        raise UsageError(f"sync: cannot sync {args.provider!r} (can: {', '.join(sorted(SYNCABLE))})")
    try:
        since = parse_duration(args.since)
    except ValueError as error:
        raise UsageError(f"sync: --since: {error}") from None
    bar = _sync_bar(args.provider, enabled=not args.no_progress and sys.stderr.isatty())

    async def run() -> int:
        await upgrade(settings.database_url)
        runtime = Runtime.build(settings=settings, config=config)
        try:
            await runtime.sync_directory()
            report = await sync_provider(
                runtime, args.provider, since=since, progress=bar.update if bar is not None else None
            )
        except SyncError as error:
            print(f"sync {args.provider}: {error}", file=sys.stderr)
            return EXIT_FAILURE
        finally:
            if bar is not None:
                bar.close()
            await runtime.close()
        for reason in report.skipped:
            print(f"sync {args.provider}: skipped: {reason}", file=sys.stderr)
        print(f"sync {args.provider}: {report.summary()}", file=sys.stderr)
        return EXIT_OK

    return asyncio.run(run())


def _sync_bar(provider: str, *, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit=" ratings", desc=f"sync {provider}", file=sys.stderr, leave=True)


def main(
    argv: Sequence[str] | None = None,
    *,
    platforms: PlatformLoader | None = None,
    console: PlatformConsole | None = None,
    manifest: PlatformManifest | None = None,
    teams_package: PlatformPackage | None = None,
) -> int:
    """Run one verb and return its exit status; never lets a traceback reach the operator."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # Alembic announces every plugin and migration context at INFO; operators need none of it.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = load_settings()
        if args.verb == "check-config":
            return cmd_check_config(args, settings)
        if args.verb == "db":
            return cmd_db_upgrade(args, settings)
        if args.verb == "import":
            return cmd_import(args, settings)
        if args.verb == "sync":
            return cmd_sync(args, settings)
        if args.verb == "digest":
            return cmd_digest(args, settings)
        if args.verb == "serve":
            return cmd_serve(args, settings, platforms)
        if args.verb == "console":
            return cmd_console(args, settings, console)
        if args.verb == "slack-manifest":
            return cmd_slack_manifest(args, settings, manifest)
        if args.verb == "teams-manifest":
            return cmd_teams_manifest(args, settings, teams_package)
        raise UsageError(f"unknown verb {args.verb!r}")
    except UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as error:
        print(f"configuration error in {error}", file=sys.stderr)
        return EXIT_USAGE
    except MissingSetting as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except ModuleNotFoundError as error:
        module = (error.name or "").split(".")[0]
        if module not in EXTRA_OF:
            raise
        extra = EXTRA_OF[module]
        print(
            f"{args.verb} needs the '{extra}' extra ({module} is not installed): "
            f"pip install -e '.[{extra}]' (or pip install 'cxbot[{extra}]')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except Exception as error:  # the last line of defence: one readable line, details with -v
        logging.getLogger("cxbot").debug("failure", exc_info=True)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
