"""One process at a time per study folder: an exclusive, non-blocking file lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from scaler.errors import RunError
from scaler.files import is_temporary, remove_stale_temporaries

LOCK_NAME = ".lock"


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's lock for the duration of a study run: one `scaler search` at a time.

    Creates the folder (and the folders above it that are missing) and its lock file, and
    removes them again when the run wrote nothing else there (a refused study leaves the disk
    as it found it). Removes temporary files that killed writers left behind. RunError when the
    folder cannot be written or another process holds it.
    """
    try:
        resolved = folder.resolve()  # so that 'new/../old' never counts the existing 'old' as made here
        missing = [p for p in (resolved, *resolved.parents) if not p.exists()]  # the deepest first
        lock_created = bool(missing) or not (folder / LOCK_NAME).exists()
    except OSError as exc:
        raise RunError(f"cannot write to study folder {folder}: {exc.strerror}") from None
    except RuntimeError as exc:  # a symlink loop, as resolve() reports it on Python 3.11
        raise RunError(f"cannot write to study folder {folder}: {exc}") from None
    handle = _take(folder)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    remove_stale_temporaries(folder)
    before = _names(folder) if lock_created else set()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # a folder removed meanwhile must not hide the error in flight
            if lock_created and _names(folder) == before:
                (folder / LOCK_NAME).unlink()  # while held: a process that opened it meets the lock
                for made in missing:  # each one empty once the one below it is gone
                    if any(made.iterdir()):
                        break
                    made.rmdir()
        handle.close()


def _take(folder: Path, tries: int = 100) -> TextIO:
    """The folder's lock file, open and locked. A holder that wrote nothing removes the file
    as it leaves, so a lock taken on a file no longer at its path would guard nothing: it is
    taken again on the file there now."""
    path = folder / LOCK_NAME
    for _ in range(tries):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only or virtual file system (/proc): nothing to retry
            raise RunError(f"cannot create study folder {folder}: {exc.strerror}") from None
        try:
            handle = open(path, "a+")
        except FileNotFoundError:  # the folder removed since it was made: make it again
            continue
        except OSError as exc:
            raise RunError(f"cannot write to study folder {folder}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunError(f"{folder} is already running ({holder}); wait for it to finish") from None
        try:
            if os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()
    raise RunError(f"cannot take the lock of study folder {folder}: its lock file kept being replaced")


def _names(folder: Path) -> set[str]:
    """What the folder holds, the lock and temporaries of atomic writes aside."""
    return {p.name for p in folder.iterdir() if p.name != LOCK_NAME and not is_temporary(p.name)}



@contextlib.contextmanager
def writers_in_turn(folder: Path) -> Iterator[None]:
    """Hold the folder itself under an exclusive lock, waiting for it: the processes of one
    study (a search and a worker given its folder) each rewrite its result files, and a
    table and summary written in turn by two of them could end as one's table beside the
    other's summary, or an older state after a newer. Where the file system cannot lock a
    folder (some network file systems), each writes as before."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock
