"""One process at a time per study folder: an exclusive, non-blocking file lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from scaler.errors import RunError

LOCK_NAME = ".lock"
STALE_SECONDS = 60


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's lock for the duration of a study run: one `scaler search` at a time.

    Creates the folder (and removes it again if it is left holding only the lock), and
    removes temporary files that killed writers left behind. RunError when the folder cannot
    be written or another process holds it.
    """
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_NAME, "a+")
    except OSError as exc:
        raise RunError(f"cannot write to study folder {folder}: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunError(f"{folder} is already running ({holder}); wait for it to finish") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    _remove_stale_temporaries(folder)
    try:
        yield
    finally:
        handle.close()
        with contextlib.suppress(OSError):  # a folder removed meanwhile must not hide the error in flight
            if created and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
                shutil.rmtree(folder, ignore_errors=True)


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of atomic writes (`.NAME.*.tmp`) a killed writer left, a minute old or
    more (younger ones may belong to a `scaler worker --folder` writing right now)."""
    for path in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > STALE_SECONDS:
                path.unlink()
