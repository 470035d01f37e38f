"""Start-up checks: every setting a command depends on is tried before it starts, and a bad one
stops it with one line on stderr that names the variable and what to do (exit 2), never a
traceback. Settings' own validation covers the shape of each value; these cover what only
trying shows: a Redis that does not answer, a data folder that cannot be written, a price
table that cannot be read."""

from __future__ import annotations

import sys
import tempfile
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from service.config import Settings
from service.domain.pricing import PriceTable, load_price_table
from service.queue import redis_problem

EXIT_CONFIGURATION = 2


def refuse(variable: str, problem: str) -> NoReturn:
    print(f"tunegate: configuration error: {variable}: {problem}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIGURATION)


def check_redis(settings: Settings) -> None:
    if settings.redis_url is None:
        return
    problem = redis_problem(settings.redis_url)
    if problem is not None:
        shown = redacted_url(settings.redis_url)
        refuse("REDIS_URL", f"cannot reach Redis at {shown} ({problem}); start it or fix the URL")


def check_data_dir(settings: Settings) -> None:
    folder = settings.local_data_dir
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        refuse(
            "TUNEGATE_DATA_DIR",
            f"cannot write {folder} ({error.strerror or error}); "
            "point it at a folder this user may write",
        )


def check_prices(settings: Settings) -> PriceTable | None:
    """The price table `TUNEGATE_PRICES_FILE` names, read once; None for the packaged one."""
    if settings.prices_file is None:
        return None
    try:
        return load_price_table(settings.prices_file)
    except OSError as error:
        problem = error.strerror or str(error)
    except ValidationError as error:
        problem = f"not a price table: {error.error_count()} problem(s), first: {_first(error)}"
    refuse(
        "TUNEGATE_PRICES_FILE",
        f"cannot use {settings.prices_file} ({problem}); fix the file or unset the variable",
    )


def check_service(settings: Settings) -> None:
    """What `serve` and `worker` need before they start."""
    check_prices(settings)
    check_data_dir(settings)
    check_redis(settings)


def redacted_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    hosts = parts.netloc.rpartition("@")[2]  # host:port, or a sentinel URL's list of them
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{hosts}"))


def _first(error: ValidationError) -> str:
    item = error.errors()[0]
    where = ".".join(str(part) for part in item["loc"]) or "file"
    return f"{where}: {item['msg']}"
