"""The `tunegate` command line: serve, worker, sandbox-upstream, validate, admin, openapi."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import AliasChoices

from service.config import Settings, load_settings
from service.logging import configure_logging, register_secrets

OPENAPI_PATH = Path("openapi/openapi.json")


def _settings_with_logging() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    register_secrets(settings.secret_values())
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    from service.runtime import serve
    from service.startup import check_service

    settings = _settings_with_logging()
    check_service(settings)
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    serve(settings.model_copy(update=overrides), workers=args.workers)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from service.startup import check_service
    from workers.main import run_worker

    settings = _settings_with_logging()
    if settings.redis_url is None:
        print(
            "tunegate: `tunegate worker` needs REDIS_URL (embedded mode runs workers inside "
            "`tunegate serve`)",
            file=sys.stderr,
        )
        return 2
    check_service(settings)
    run_worker(settings, burst=args.burst, shutdown_timeout=args.shutdown_timeout)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from service.sandbox import SandboxConfig, serve

    settings = _settings_with_logging()
    key = args.api_key or (
        settings.openai_api_key.get_secret_value() if settings.openai_api_key else "sk-sandbox"
    )
    serve(SandboxConfig(api_key=key), args.host, args.port)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from service.domain.datasets.text import describe_report
    from service.domain.datasets.validate import DatasetOptions, validate_file
    from service.startup import check_prices

    path = Path(args.file)
    if not path.is_file():
        print(f"tunegate: no such file: {path}", file=sys.stderr)
        return 2
    prices = check_prices(load_settings())
    report = validate_file(path, DatasetOptions(model=args.model, prices=prices))
    print(report.model_dump_json(indent=2) if args.json else describe_report(report, path.name))
    return 0 if report.valid else 1


def _admin(operation: Callable[[Any], Any]) -> Any:
    from service.errors import TunegateError
    from service.startup import check_redis
    from service.store import Store, keys

    settings = load_settings()
    keys.use_namespace(settings.redis_namespace)
    if settings.redis_url is None:
        print(
            "tunegate: admin commands need REDIS_URL (in embedded mode use the HTTP operator "
            "API with the printed admin token)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    check_redis(settings)

    async def run() -> Any:
        store = Store(settings.redis_url or "")
        try:
            return await operation(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(run())
    except TunegateError as error:  # an unknown org, say: the operator's mistake, not a crash
        print(f"tunegate: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_create_org(args: argparse.Namespace) -> int:
    from service.operations.tenancy.orgs import create_org

    org = _admin(lambda store: create_org(store, args.name, None))
    print(json.dumps({"id": org.id, "name": org.name, "created_at": org.created_at}))
    return 0


def cmd_reclaim_orphans(args: argparse.Namespace) -> int:
    from service.operations.context import Context
    from service.operations.datasets.orphans import reclaim_orphans

    settings = _settings_with_logging()  # each deletion logged to stderr, the count to stdout
    grace = args.grace_seconds
    removed = _admin(lambda store: reclaim_orphans(Context(settings, store), grace=grace))
    print(json.dumps({"orphan_objects_deleted": removed}))
    return 0


def cmd_create_key(args: argparse.Namespace) -> int:
    from service.operations.tenancy.orgs import create_key

    record, issued = _admin(lambda store: create_key(store, args.org_id, args.name, args.role))
    print(
        json.dumps(
            {
                "id": record.id,
                "key": issued.plaintext,
                "name": record.name,
                "role": record.role,
                "created_at": record.created_at,
            }
        )
    )
    return 0


def render_openapi() -> str:
    from service.http.app import create_app, openapi_document
    from service.operations.context import Context
    from service.store import Store

    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    app = create_app(Context(settings=settings, store=Store(settings.redis_url or "")))
    return json.dumps(openapi_document(app), indent=2, sort_keys=True) + "\n"


def cmd_health(args: argparse.Namespace) -> int:
    from service.probe import check

    problem = check(load_settings(), args.role, args.port)
    if problem is not None:
        print(f"tunegate: unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    rendered = render_openapi()
    path = Path(args.output)
    if args.check:
        if not path.exists() or path.read_text() != rendered:
            print(f"tunegate: {path} is stale; run `tunegate openapi`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rendered)
    print(f"wrote {path}")
    return 0


# The settings each command reads (None: all of them), for its --help.
COMMAND_SETTINGS: dict[str, tuple[str, ...] | None] = {
    "serve": None,
    "worker": None,
    "sandbox-upstream": ("openai_api_key", "log_format", "log_level"),
    "validate": (),
    "admin": ("redis_url", "redis_namespace", "storage_url", "data_dir", "log_format", "log_level"),
    "openapi": (),
    "health": ("redis_url", "redis_namespace", "port"),
}


def environment_help(names: tuple[str, ...] | None) -> str:
    """The environment variables of `names` (None: every setting) and their defaults, as the
    Settings class declares them."""
    fields = Settings.model_fields
    rows = []
    for name in fields if names is None else names:
        field = fields[name]
        alias = field.validation_alias
        variable = alias.choices[0] if isinstance(alias, AliasChoices) else name.upper()
        default = "unset" if field.default is None else str(field.default) or "empty"
        meaning = f" ({field.description})" if field.description else ""
        rows.append(f"  {variable:<36} default: {default}{meaning}")
    if not rows:
        return "environment: none read"
    return "environment:\n" + "\n".join(rows)


def _command(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=environment_help(COMMAND_SETTINGS[name]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _grace(value: str) -> float:
    """An upload in flight is younger than ten minutes (its part file is written as it goes)."""
    seconds = float(value)
    if seconds < 600:
        raise argparse.ArgumentTypeError("at least 600 seconds, or uploads in flight are swept")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    from service import __version__

    parser = argparse.ArgumentParser(
        prog="tunegate",
        description=__doc__,
        epilog=environment_help(None),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tunegate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = _command(sub, "serve", "run the HTTP service (embedded without REDIS_URL)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (needs REDIS_URL)"
    )
    serve.set_defaults(func=cmd_serve)
    worker = _command(sub, "worker", "run an RQ worker with the scheduler")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument(
        "--shutdown-timeout",
        type=float,
        default=25.0,
        help="seconds a SIGTERM or SIGINT leaves the task in hand before it is handed back "
        "(default 25)",
    )
    worker.set_defaults(func=cmd_worker)
    sandbox = _command(sub, "sandbox-upstream", "run the OpenAI-compatible sandbox")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8090)
    sandbox.add_argument("--api-key", help="bearer key it accepts (default OPENAI_API_KEY)")
    sandbox.set_defaults(func=cmd_sandbox)
    validate = _command(sub, "validate", "validate a fine-tuning dataset offline")
    validate.add_argument("file")
    validate.add_argument("--model", help="model to estimate cost and limits for")
    validate.add_argument("--json", action="store_true", help="print the full report as JSON")
    validate.set_defaults(func=cmd_validate)
    admin = _command(sub, "admin", "operator commands against REDIS_URL")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    create_org = admin_sub.add_parser("create-org")
    create_org.add_argument("name")
    create_org.set_defaults(func=cmd_create_org)
    create_key = admin_sub.add_parser("create-key")
    create_key.add_argument("org_id")
    create_key.add_argument("--role", required=True, choices=["admin", "member", "inference"])
    create_key.add_argument("--name", default="cli")
    create_key.set_defaults(func=cmd_create_key)
    reclaim = admin_sub.add_parser(
        "reclaim-orphans", help="delete stored objects no file record keeps, past the grace"
    )
    reclaim.add_argument("--grace-seconds", type=_grace, default=3600, help="at least 600")
    reclaim.set_defaults(func=cmd_reclaim_orphans)
    health = _command(sub, "health", "exit 0 when this container's role is healthy")
    health.add_argument(
        "--role",
        choices=["serve", "worker", "sandbox-upstream"],
        help="default: the tunegate command the container runs as process 1",
    )
    health.add_argument("--port", type=int, help="serve or sandbox-upstream port to probe")
    health.set_defaults(func=cmd_health)
    openapi = _command(sub, "openapi", "write openapi/openapi.json")
    openapi.add_argument("--check", action="store_true", help="fail when the file is stale")
    openapi.add_argument("--output", default=str(OPENAPI_PATH))
    openapi.set_defaults(func=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
