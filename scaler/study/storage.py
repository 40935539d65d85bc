"""Where a study lives: a journal file beside its results (one machine), or a database URL
(shared between machines, with heartbeats so a dead worker's item is taken up again).
SQLAlchemy is imported only for a URL (a sixth of a second of every start otherwise)."""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import optuna

from scaler.errors import RunError, UsageError
from scaler.study.signals import signals_held

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

JOURNAL_NAME = "study.journal"


def heartbeat_timing() -> tuple[int, int]:
    """(heartbeat, grace) in seconds for RDB storages: a running trial records a heartbeat
    every `heartbeat` s, and one silent for `grace` s belongs to a dead worker. Set by
    SCALER_HEARTBEAT_SECONDS (default 10) and SCALER_GRACE_SECONDS (30); UsageError unless
    both are whole numbers >= 1 and the grace at least twice the heartbeat (a shorter one
    takes a live worker's item from it and trains it again)."""
    values = []
    for name, default in (("SCALER_HEARTBEAT_SECONDS", 10), ("SCALER_GRACE_SECONDS", 30)):
        text = os.environ.get(name, "").strip()
        if not text:
            values.append(default)
        elif not text.isdigit() or int(text) < 1:
            raise UsageError(f"{name}={text!r} is not allowed; it must be a whole number of seconds >= 1")
        else:
            values.append(int(text))
    heartbeat, grace = values
    if grace < 2 * heartbeat:
        raise UsageError(f"SCALER_GRACE_SECONDS={grace} is not allowed with SCALER_HEARTBEAT_SECONDS={heartbeat}; "
                         "the grace must be at least twice the heartbeat")
    return heartbeat, grace


def is_url(storage: str) -> bool:
    """Whether a --storage value is a database URL (else it is a journal file's path)."""
    return "://" in storage


def same_storage(recorded: str, storage_url: str) -> bool:
    """Whether a summary's recorded storage (a label) and a URL name the same place: the same
    backend, host, port, database and user (driver and password may differ), or both the
    folder's journal."""
    if not is_url(recorded) or not is_url(storage_url):
        return recorded == storage_label(storage_url)

    def identity(url: str) -> tuple:
        try:
            parsed = make_url(normalise_url(url.replace(":***@", "@")))
        except Exception:  # an unparsable label matches nothing
            return (url,)
        database = parsed.database
        if parsed.get_backend_name() == "sqlite" and database and not database.startswith("file:"):
            database = os.path.realpath(database)  # one file, however its path is spelled (relative to this folder, as SQLite reads it)
        return (parsed.get_backend_name(), parsed.host, parsed.port, database, parsed.username)

    return identity(recorded) == identity(storage_url)


def storage_label(storage_url: str) -> str:
    """How a summary records where its study lives: the journal's file name, or the URL
    without its password."""
    return mask_url(storage_url) if is_url(storage_url) else JOURNAL_NAME


class _Journal(optuna.storages.journal.JournalFileBackend):
    """A folder's journal file whose writes a signal never cuts inside Optuna's file lock
    (`signals_held`): a lock left behind made every later write, the marking of the
    interrupted item included, wait out Optuna's 30 s grace."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with signals_held():
            super().append_logs(logs)


def open_storage(storage: str, *, exclusive: bool = False, create: bool = True) -> optuna.storages.BaseStorage:
    """An RDB storage for a URL (with heartbeats), a journal file for a path.

    `exclusive` (the caller holds the folder's lock, so no other process writes the journal):
    first repair what a killed process may have left in the journal. Without `create`, a
    SQLite file that does not exist is a UsageError (opening it would create an empty one).
    """
    if is_url(storage):
        check_url(storage)
        _check_sqlite_file(storage, create=create)
        from scaler.study.trials import requeue_lost  # the heartbeat's callback (here: trials -> handle -> storage would cycle)

        heartbeat, grace = heartbeat_timing()
        parsed = make_url(normalise_url(storage))
        sqlite = parsed.get_backend_name() == "sqlite"
        busy = {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}} if sqlite and "timeout" not in parsed.query else {}  # a URL's own wins
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                opened = optuna.storages.RDBStorage(
                    normalise_url(storage),
                    heartbeat_interval=heartbeat,
                    grace_period=grace,
                    heartbeat_stale_trial_callback=requeue_lost,
                    engine_kwargs={"pool_pre_ping": True, **busy},
                )
            if sqlite:
                _begin_immediate(opened.engine)
            return opened
        except Exception as exc:  # sqlalchemy / driver errors: one line, no password
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "Failed to import DB access module" in first or isinstance(exc, ImportError):
                driver = make_url(normalise_url(storage)).get_driver_name()
                first = f"its driver {driver!r} is not installed (pip install {_DRIVER_PACKAGES.get(driver, driver)})"
            raise RunError(f"cannot open storage {mask_url(storage)}: {scrub(first, storage)}") from None
    path = Path(storage)
    if exclusive:
        repair_journal(path)
        check_journal(path)
    try:
        return optuna.storages.JournalStorage(_Journal(str(path)))
    except (AssertionError, KeyError, TypeError, ValueError, IndexError) as exc:  # a record Optuna cannot replay
        what = type(exc).__name__ + (f": {str(exc).splitlines()[0][:80]}" if str(exc) else "")
        raise RunError(
            f"{path} holds a record Optuna cannot replay ({what}); "
            "the journal is the study's record: restore it from a backup, or move the search folder away to start again"
        ) from None


# How long a SQLite connection waits for another process's write lock before "database is
# locked" (pysqlite's default is 5 s, which four workers taking trials in a loop exceeded once
# every transaction took the lock, below); under the default grace period (30 s), so that a
# heartbeat kept waiting does not let its trial be judged stale, and a Ctrl-C held back during
# a wait is answered soon enough. A URL's own `?timeout=` is kept.
SQLITE_BUSY_SECONDS = 20.0


def _begin_immediate(engine: Any) -> None:
    """Make every transaction on a SQLite `engine` take the database's write lock as it begins
    (SQLAlchemy's recipe for pysqlite). SQLite ignores the FOR UPDATE of Optuna's WAITING ->
    RUNNING, which reads the trial before it writes, and pysqlite begins a transaction only at
    the write: two workers could both read a trial waiting and both take it (22 of 300 trials
    were taken twice by 4 processes, and items trained twice). Connections pooled before this
    are dropped, so none keeps the old behaviour."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()


def _check_sqlite_file(url: str, *, create: bool) -> None:
    """UsageError when `url` names a SQLite file that cannot be the study's: a folder, a file
    that is not a SQLite database (an image, a journal), or, without `create`, one that does
    not exist (SQLAlchemy would create it empty). URI filenames (`?uri=true`, `file:...`) are
    left to SQLite; in-memory ones never get here (`check_url`)."""
    database = make_url(normalise_url(url))
    name = database.database or ""
    if database.get_backend_name() != "sqlite" or name.startswith("file:") \
            or database.query.get("uri") in ("true", "1"):
        return
    path = Path(name)
    if path.is_dir():
        raise UsageError(f"{mask_url(url)}: {path.absolute()} is a folder; give a SQLite database file in it "
                         f"(sqlite:///{Path(name, 'studies.db')})", param="storage")
    if not path.is_file():
        if not create:
            raise UsageError(f"{mask_url(url)}: {path.absolute()} does not exist", param="storage")
        folder = path.absolute().parent
        if not folder.is_dir():  # SQLite makes the file, not its folder: 'unable to open database file'
            what = "is a file, not a folder" if folder.exists() else "does not exist; create it first"
            raise UsageError(f"{mask_url(url)}: the folder {folder} {what}", param="storage")
        return
    try:
        with open(path, "rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise RunError(f"cannot open storage {mask_url(url)}: {exc.strerror}") from None
    if head and head != SQLITE_HEADER:  # an empty file is a new database
        raise UsageError(f"{mask_url(url)}: {path.absolute()} is not a SQLite database", param="storage")


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def repair_journal(path: Path) -> None:
    """Drop a last line cut short by a kill, so the journal stays readable and appendable,
    and a journal lock left by a killed writer, which would stall the next one for 30 s."""
    Path(f"{path}.lock").unlink(missing_ok=True)
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data = path.read_bytes()
        f.truncate(data.rfind(b"\n") + 1)


def check_journal(path: Path) -> None:
    """RunError naming the file and line when a journal line is not a readable record (a
    journal is append-only history: a damaged line cannot be skipped without losing state)."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                record = json.loads(line.decode("utf-8"))
                if not isinstance(record, dict) or "op_code" not in record:
                    raise ValueError("not a journal record")
            except (UnicodeDecodeError, ValueError) as exc:
                raise RunError(
                    f"{path} line {number} is damaged ({str(exc).splitlines()[0][:80]}); the journal is the "
                    "study's record: restore it from a backup, or move the search folder away to start again"
                ) from None


_SECRET_KEYS = ("password", "passwd", "pwd", "sslpassword")
# Which package provides each database driver SQLAlchemy may be asked for.
_DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]", "pg8000": "pg8000", "asyncpg": "asyncpg",
    "mysqldb": "mysqlclient", "pymysql": "pymysql", "mysqlconnector": "mysql-connector-python",
}  # fmt: skip


def _split(url: str) -> tuple[str, str, str, str]:
    """(scheme, credentials, location, query) of a URL, splitting the credentials at the LAST
    '@' before the path, so an unescaped '@' in a password stays in the password."""
    scheme, _, rest = url.partition("://")
    credentials, at, remainder = rest.rpartition("@")  # credentials first: a password may hold '?' or '/'
    if not at:
        credentials, remainder = "", rest
    location, _, query = remainder.partition("?")
    return scheme, credentials, location, query


def _password(url: str) -> list[str]:
    """Every password a URL carries (in its credentials or its query), as written."""
    _, credentials, _, query = _split(url)
    found = [credentials.split(":", 1)[1]] if ":" in credentials else []
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key.lower() in _SECRET_KEYS and value:
            found.append(value)
    return [p for p in found if p]


def mask_url(url: str) -> str:
    """The URL with every password (user:PASSWORD@, ?password=) replaced by ***."""
    if "://" not in url:
        return url
    scheme, credentials, location, query = _split(url)
    if ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    pairs = []
    for pair in query.split("&") if query else []:
        key, eq, value = pair.partition("=")
        pairs.append(f"{key}=***" if key.lower() in _SECRET_KEYS and eq else pair)
    return f"{scheme}://" + (f"{credentials}@" if credentials else "") + location + (("?" + "&".join(pairs)) if pairs else "")


def scrub(text: str, url: str) -> str:
    """`text` (say, a driver's error) with the URL's passwords, raw and escaped, masked."""
    for secret in _password(url):
        for form in {secret, quote(secret, safe=""), unquote(secret)}:
            if len(form) >= 2:
                text = text.replace(form, "***")
    return text


def make_url(url: str) -> URL:
    """SQLAlchemy's parsed form of a database URL."""
    from sqlalchemy.engine import make_url as parse

    return parse(url)


def normalise_url(url: str) -> str:
    """The URL SQLAlchemy should get: a password escaped (an '@' or ':' in it would otherwise
    split the URL in the wrong place), 'postgres://' read as 'postgresql://', and a bare
    'postgresql://' given a PostgreSQL driver that is installed."""
    scheme, credentials, location, query = _split(url)
    if ":" in credentials:
        user, password = credentials.split(":", 1)
        credentials = f"{user}:{quote(unquote(password), safe='')}"
    if scheme in ("postgres", "postgresql"):
        scheme = f"postgresql+{_installed_postgres_driver()}"
    return f"{scheme}://" + (f"{credentials}@" if credentials else "") + location + (f"?{query}" if query else "")


def _installed_postgres_driver() -> str:
    for module in ("psycopg2", "psycopg"):
        if importlib.util.find_spec(module) is not None:
            return module
    raise RunError("no PostgreSQL driver is installed; install one with: pip install psycopg2-binary")


def check_url(url: str) -> None:
    """UsageError (naming the expected form) for a storage URL SQLAlchemy cannot parse."""
    if not is_url(url):
        raise UsageError(
            f"storage {mask_url(url)!r} is not a database URL; give one like "
            "postgresql://user@host/db (password in ~/.pgpass or $SCALER_STORAGE)",
            param="storage",
        )
    try:
        parsed = make_url(normalise_url(url))
        parsed.get_dialect()
    except Exception as exc:  # sqlalchemy's ArgumentError / NoSuchModuleError
        message = scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, url)
        raise UsageError(f"storage {mask_url(url)!r} is not a usable database URL: {message}", param="storage") from None
    if parsed.get_backend_name() == "sqlite" and parsed.host:  # 'sqlite://runs/s.db': 'runs' read as a host
        path = f"{parsed.host}/{parsed.database or ''}".rstrip("/")
        raise UsageError(
            f"storage {mask_url(url)!r} names a host ({parsed.host!r}), and SQLite has none: a file here is "
            f"sqlite:///{path} (three slashes; four before an absolute path)",
            param="storage",
        )
    if _in_memory(parsed):
        raise UsageError(
            f"storage {mask_url(url)!r} is an in-memory database: each process would see its own, empty, "
            "and it ends with the run; give a file (sqlite:///path/study.db) or a server",
            param="storage",
        )


def _in_memory(url: URL) -> bool:
    """Whether a parsed URL names an in-memory SQLite database (no file, ':memory:', or a URI
    filename in memory mode)."""
    if url.get_backend_name() != "sqlite":
        return False
    name = url.database or ""
    return name in ("", ":memory:") or name.startswith("file::memory:") or url.query.get("mode") == "memory"
