"""Results computed once per warehouse state, and forecasts fitted once per series.

The quarterly review asks for the same chargeback three times (the month table, the quarter
table, the reconciliation), each department statement runs in its own notebook kernel and
asks for the whole quarter's chargeback again, and the forecasts refit the same series at the
same backtest origins in several tables. :func:`cached_frame` keeps such a result:

* in this process (a small dict), so a notebook kernel computes it once;
* on disk, as Parquet under the cache folder, so the next process (the next department's
  kernel, tomorrow's review on an unchanged warehouse) reads it instead of computing it.

A result is stored under a hash of everything it depends on. For results read from the
warehouse that includes its state token (:meth:`finops.warehouse.Warehouse.state_token`:
the file's identity, size and modification time, which every load changes), so a load, a
restated month or another warehouse is never answered from an old result; when an engine
cannot tell its state (Spark over data elsewhere) nothing is cached. Forecast fits are keyed
by the training series itself, so they are shared wherever the same series is fitted.

The folder is ``$FINOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/finops``, else
``~/.cache/finops``. ``FINOPS_CACHE=off`` turns the cache off. A folder that cannot be written
(a read-only home) only means nothing is kept on disk; an unreadable entry is computed again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import enum
import functools
import hashlib
import inspect
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath

import polars as pl

ENV_DIR = "FINOPS_CACHE_DIR"
ENV_SWITCH = "FINOPS_CACHE"
VERSION = "1"
"""Part of every key, with the analyses' own source (:func:`code_version`): a new release or a local
edit of the code that computes a result never reads a result the old code stored."""
MEMORY_ENTRIES = 64
DISK_ENTRIES = 2000
"""Entries kept on disk; the least recently written go first."""

_memory: OrderedDict[str, pl.DataFrame] = OrderedDict()
stats = {"hits": 0, "disk_hits": 0, "misses": 0}
"""Counts since the process started (the benchmark and tests read them)."""


def enabled() -> bool:
    """False when ``FINOPS_CACHE`` is ``off`` (or ``0``, ``false``, ``no``)."""
    return os.environ.get(ENV_SWITCH, "on").strip().lower() not in ("off", "0", "false", "no")


def cache_dir() -> Path:
    """Where entries are written (not created until the first one is)."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "finops"


@functools.cache
def code_version() -> str:
    """A hash of the source of the code whose results are cached: finops/analyses and the shared keys."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted([*package.glob("*.py"), package.parent / "warehouse" / "keys.py"]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def key_of(*parts: object) -> str:
    """A hash of ``parts`` (their reprs: tuples, strings, dates, Decimals and configs are stable)."""
    digest = hashlib.sha256(f"{VERSION}:{code_version()}".encode())
    for part in parts:
        digest.update(b"\x00")
        digest.update(part if isinstance(part, bytes) else repr(part).encode())
    return digest.hexdigest()


def cached_frame(key: str | None, compute: Callable[[], pl.DataFrame]) -> pl.DataFrame:
    """The frame stored under ``key``, or ``compute()``, then stored. ``key`` None: always computed.

    Each caller gets its own (shallow) copy: polars renames columns in place (``df.columns = …``),
    and one caller's rename must not reach the next.
    """
    if key is None or not enabled():
        return compute()
    if key in _memory:
        _memory.move_to_end(key)
        stats["hits"] += 1
        return _memory[key].clone()  # a caller's in-place rename must not reach the next caller
    path = cache_dir() / key[:2] / f"{key}.parquet"
    frame = _read(path)
    if frame is None:
        with _computing(path):
            frame = _read(path)  # another process may have stored it while this one waited
            if frame is None:
                stats["misses"] += 1
                frame = compute()
                _write(path, frame)
            else:
                stats["disk_hits"] += 1
    else:
        stats["disk_hits"] += 1
    _memory[key] = frame
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)
    return frame.clone()


def per_warehouse_state(function: Callable[..., pl.DataFrame]) -> Callable[..., pl.DataFrame]:
    """Keep an analysis' frame per warehouse state and arguments (the analysis is ``function(wh, …)``).

    The arguments are bound to the signature (defaults applied), so a call with keywords and one
    with positions share an entry. An argument whose repr does not pin its value (a DataFrame, a
    callable, a set) means the call is computed and not kept.
    """
    signature = inspect.signature(function)

    @functools.wraps(function)
    def cached(wh, *args, **kwargs):
        state = wh.state_token() if hasattr(wh, "state_token") else None
        key = None
        if state is not None:
            bound = signature.bind(wh, *args, **kwargs)
            bound.apply_defaults()
            arguments = tuple((name, value) for name, value in bound.arguments.items() if value is not wh)
            if all(_pinned(value) for _, value in arguments):
                key = key_of(function.__module__, function.__qualname__, state, arguments)
        return cached_frame(key, lambda: function(wh, *args, **kwargs))

    return cached


_PINNED = (str, int, float, bool, type(None), decimal.Decimal, datetime.date, datetime.timedelta, PurePath, enum.Enum)


def _pinned(value: object) -> bool:
    """True when ``repr(value)`` determines the value (so it can be part of a key)."""
    if isinstance(value, _PINNED):
        return True
    if isinstance(value, (tuple, list)):
        return all(_pinned(v) for v in value)
    if isinstance(value, dict):
        return all(_pinned(k) and _pinned(v) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(_pinned(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def clear_memory() -> None:
    """Forget this process's entries (the disk keeps its own)."""
    _memory.clear()


LOCK_WAIT = 600.0
"""Seconds a process waits for another that is computing the same entry, then computes it itself."""


@contextlib.contextmanager
def _computing(path: Path) -> Iterator[None]:
    """Hold the entry's lock while it is computed and stored: a second process that asks for the
    same entry meanwhile waits, then reads it, instead of computing it again.

    The review's forecast helper and its notebook kernel ask for the same forecasts, and
    statement kernels rendered side by side for the same chargeback. The lock is ``flock`` on
    ``<entry>.parquet.lock``: it is released when its holder ends, even killed. Where it cannot be had
    (no ``fcntl``, a read-only folder, a holder past :data:`LOCK_WAIT`) the entry is computed
    anyway, at worst twice, never wrong: entries are written atomically.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    lock = path.with_name(f"{path.name}.lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        held, deadline, delay = False, time.monotonic() + LOCK_WAIT, 0.02
        while not held and time.monotonic() < deadline:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        try:
            yield
        finally:
            if held:  # written (or failed) by now: a process that opens the lock later reads the entry instead
                with contextlib.suppress(OSError):
                    lock.unlink()
    finally:
        os.close(fd)  # releases the lock


def _read(path: Path) -> pl.DataFrame | None:
    try:
        return pl.read_parquet(path)
    except FileNotFoundError:
        return None
    except (OSError, pl.exceptions.PolarsError):  # a torn or foreign file: compute again, and overwrite it then
        return None


def _write(path: Path, frame: pl.DataFrame) -> None:
    """Write atomically (a temp file renamed into place), so a reader never sees half an entry."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
        os.close(fd)
        try:
            frame.write_parquet(tmp)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _prune(path.parent.parent)
    except (OSError, pl.exceptions.PolarsError):  # a read-only or full disk, an unstorable type: not kept
        return


def _prune(root: Path) -> None:
    """Keep the newest :data:`DISK_ENTRIES` entries."""
    entries = list(root.glob("??/*.parquet"))
    if len(entries) <= DISK_ENTRIES:
        return
    entries.sort(key=_mtime)
    for old in entries[: len(entries) - DISK_ENTRIES]:
        with contextlib.suppress(OSError):
            old.unlink()


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # removed meanwhile by another process's prune
        return 0
