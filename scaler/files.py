"""Writing result files safely (atomic writes; values JSON and CSV can hold) and recording the
environment that produced them."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # pandas is imported where a frame is written: the command line starts without it
    import pandas as pd

PACKAGES = ("scaler", "torch", "fvcore", "optuna", "pandas", "numpy", "typer", "rich")


def tidy_path(text: str) -> str:
    """A path as typed, minus what never changes which file it names: '.' parts, doubled and
    trailing slashes ('./a//b/' -> 'a/b'). '..' stays (past a symbolic link it leads
    elsewhere than the text suggests), and so does every other character, on any system."""
    return str(PurePosixPath(text))


def read_from(path: Path) -> str:
    """Where a relative `path` is read from, for a message about a path that is not there
    (a study keeps its --data as typed, and another folder reads it elsewhere); "" if absolute."""
    return "" if path.is_absolute() else f" (a relative path, read from {Path.cwd()})"


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a part
    (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode())


TEMPORARY_GLOB = ".*.tmp"  # what atomic writes leave while they run (or when killed): ".NAME.XXXX.tmp"


def is_temporary(name: str) -> bool:
    """Whether a file name is an atomic write's temporary (see TEMPORARY_GLOB)."""
    return name.startswith(".") and name.endswith(".tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part
    (see `atomic_writer`)."""
    with atomic_writer(path) as f:
        f.write(data)


def _umask() -> int:
    """The process's umask as it is now: read from /proc (Linux), which changes nothing; else
    the one it had when this module was imported (setting it to read it, the only portable
    way, changes it for every thread meanwhile)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _IMPORT_UMASK


def _read_umask_once() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_IMPORT_UMASK = _read_umask_once()


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file whose bytes replace `path` when the body ends, so that readers see the old
    file or the new one, never a part: they go to a temporary file in the same folder (named as
    TEMPORARY_GLOB says), are flushed to disk and renamed onto `path`; on any error the
    temporary is removed and `path` left as it was. The file gets the permissions any new file
    would (mkstemp's 0600 would make results private)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # named after the file asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            with contextlib.suppress(OSError):  # a file system without modes (vfat, some mounts) keeps its own
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno is None:  # not the file system's (io.UnsupportedOperation): as it was raised
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


STALE_SECONDS = 60  # a temporary not written to for this long belongs to a writer that was killed


def remove_stale_temporaries(folder: Path, pattern: str = TEMPORARY_GLOB, seconds: float = STALE_SECONDS) -> None:
    """Remove the temporaries of atomic writes a killed writer left in `folder` (those `pattern`
    matches; every `.NAME.*.tmp` in a folder only scaler writes), those not written to for
    `seconds` or more (younger ones may belong to another process writing right now)."""
    for path in folder.glob(pattern):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > seconds:
                path.unlink()


def git_commit(start: Path | None = None) -> str | None:
    """The checkout's commit (with '+dirty' when it has changes), or None outside git, and
    where `start` (by default this package) is not tracked there: a scaler installed into a
    virtual environment inside another repository is not that repository's code."""
    cwd = start or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        tracked = subprocess.run(["git", "ls-files", "--", "."], cwd=cwd, capture_output=True, text=True, timeout=5)
        if not tracked.stdout.strip():
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def json_ready(value: object) -> object:
    """`value` as JSON can hold it: numpy scalars to Python, non-finite floats to None, in
    nested dicts, lists and tuples too."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def whole_numbers(frame: pd.DataFrame, keys: Iterable[str]) -> pd.DataFrame:
    """`frame` with each float column of `keys` whose values are all whole (or missing) held
    as nullable integers: a count beside blanks reads 3 in CSV, not 3.0 (pandas writes a
    column with any NaN as floats)."""
    import pandas as pd

    counts = {}
    for key in keys:
        values = frame[key] if key in frame.columns else None
        if values is None or not pd.api.types.is_float_dtype(values):
            continue
        known = values.dropna()
        if (known % 1 == 0).all() and (known.abs() < 2**63).all():
            counts[key] = "Int64"
    return frame.astype(counts)


@functools.lru_cache(maxsize=1)
def environment_summary() -> dict:
    """Python, platform, package versions and git commit: what a result depends on. Read once
    per process (it runs git), however often result files are rewritten."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": git_commit(),
    }
