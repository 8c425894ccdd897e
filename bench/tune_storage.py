"""Where a tuning study lives: an optuna storage opened from ``--storage``.

- a SQLite file path, or nothing (``<out>/<study>.db``): a SQLite database, for workers on one
  machine;
- a database URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``, with an optional
  ``+driver``): optuna's RDBStorage, for workers sharing a database server;
- ``journal:///path/to/study.log`` or a path ending in ``.log``/``.journal``: optuna's
  JournalStorage in one append-only file guarded by a lock file beside it, for workers on
  machines that share a file system (NFS, Lustre) but no database server.

SQLite connections wait up to :data:`SQLITE_TIMEOUT_S` for a lock and every call retries with a
random back-off while the database reports one. Any other URL scheme is bad input.
"""

from __future__ import annotations

import os
import random
import re
import time
import warnings
from pathlib import Path
from typing import Any

from datasets.types import InputError

HEARTBEAT_S = 20  # a worker's trial is stale (its worker gone) after GRACE_S without heartbeat
GRACE_S = 120
SQLITE_TIMEOUT_S = 60
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
JOURNAL_SCHEME = "journal"
JOURNAL_SUFFIXES = (".log", ".journal")


def storage_url(storage: str | os.PathLike | None, out: str | os.PathLike, study: str) -> str:
    """A storage URL: ``storage`` as given when it is a URL of a known scheme, a journal file
    or a SQLite file path made into a URL, or ``<out>/<study>.db``. Raises InputError for a URL
    of another scheme, before anything is created."""
    text = None if storage is None else str(storage)
    if text is not None and "://" in text:
        check_scheme(text)
        return text
    if text is not None and text.endswith(JOURNAL_SUFFIXES):
        path = Path(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"{JOURNAL_SCHEME}:///{path.resolve()}".replace(":////", ":///")
    path = Path(text) if text is not None else Path(out) / f"{study}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def check_scheme(url: str) -> None:
    scheme = url.split("://", 1)[0].lower()
    base = scheme.split("+", 1)[0]
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) or base not in (*RDB_SCHEMES, JOURNAL_SCHEME):
        raise InputError(f"--storage: unknown URL scheme {scheme!r}; use a SQLite file, "
                         f"journal:///PATH, or a database URL ({', '.join(RDB_SCHEMES)})")
    if base == JOURNAL_SCHEME and not journal_path(url).name:
        raise InputError(f"--storage: {url!r} names no journal file")


def journal_path(url: str) -> Path:
    return Path("/" + url.split("://", 1)[1].lstrip("/"))


def is_journal(url: str) -> bool:
    return url.split("://", 1)[0].lower() == JOURNAL_SCHEME


def _is_lock_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def retry(fn, *args, attempts: int = 8, **kwargs):
    """Call ``fn``, retrying with a random back-off while the database reports a lock."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts - 1 or not _is_lock_error(exc):
                raise
            time.sleep(random.uniform(0.1, 0.5) * 2 ** attempt)
    raise AssertionError("unreachable")


def open_storage(url: str, heartbeat: bool = True):
    """The optuna storage of ``url`` (see the module docstring)."""
    import optuna

    check_scheme(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if is_journal(url):
            return _open_journal(journal_path(url))
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
        if heartbeat:
            kwargs.update(heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        for attempt in range(6):
            try:
                return retry(optuna.storages.RDBStorage, url, **kwargs)
            except Exception as exc:
                # Two workers creating a new database race to create its tables; the loser
                # finds them made on its next attempt.
                if attempt == 5 or not _is_creation_race(exc):
                    raise
                time.sleep(random.uniform(0.2, 1.0))
    raise AssertionError("unreachable")


def _open_journal(path: Path):
    """A JournalStorage in ``path``; the lock is a file opened with O_EXCL beside it, which
    works on network file systems where fcntl locks may not."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path.parent.mkdir(parents=True, exist_ok=True)
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    return JournalStorage(backend)


def supports_heartbeat(storage) -> bool:
    from optuna.storages._heartbeat import BaseHeartbeat

    return isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None


def _is_creation_race(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return ("unique constraint" in text or "already exists" in text or "integrityerror" in text
            or "duplicate" in text or _is_lock_error(exc))


def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Heartbeats are recorded by the worker while a trial runs, not by Study.optimize.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
