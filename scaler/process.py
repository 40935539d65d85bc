"""What every scaler process sets up before it imports the library (the console script, a
local worker process): standard streams that a reader going away cannot fail, and Ctrl-C held
back during imports, whose C++ initialisers cannot take it."""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

_T = TypeVar("_T")


class ReaderSafeStream:
    """Standard output or error that turns a closed reader (EPIPE: `| head`, a `tee` stopped;
    EIO: the terminal hung up) into silence: writes after that go nowhere, and the command, a
    search included, carries on and exits as it would have (after SIGHUP, as interrupted).
    Everything else (isatty, fileno, encoding, ...) is the real stream's, so a terminal is
    still seen as one."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except OSError as exc:
                self._silence_gone(exc)
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except OSError as exc:
                self._silence_gone(exc)

    def _silence_gone(self, exc: OSError) -> None:
        """Silence where `exc` says the reader is gone; raise it otherwise (a full disk)."""
        if not (isinstance(exc, BrokenPipeError) or exc.errno == errno.EIO):
            raise exc
        self._silence()

    def _silence(self) -> None:
        self.reader_gone = True
        try:  # whatever is still buffered, and the interpreter's last flush, go to /dev/null
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_streams() -> None:
    """Standard output and error as ReaderSafeStreams, in a process that runs a command (the
    console script, a worker process): a reader of either that goes away fails nothing (a
    progress line to a closed `2>&1 | head` ended a search with exit 1 and its candidate left
    running)."""
    if sys.stdout is None:
        sys.stdout = _discarded(1)
    if sys.stderr is None:
        sys.stderr = _discarded(2)
    if not isinstance(sys.stdout, ReaderSafeStream):
        sys.stdout = ReaderSafeStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, ReaderSafeStream):
        sys.stderr = ReaderSafeStream(sys.stderr)  # type: ignore[assignment]


def _discarded(fd: int) -> TextIO:
    """/dev/null for a standard stream closed at start-up (`2>&-`, a daemon), which Python
    leaves None: print(file=sys.stderr) would then write to stdout (a warning inside a CSV
    document), and the next file opened would take the free descriptor (a C library's write
    to 2 landing in a result file). What the user closed stays discarded; the exit code
    still tells."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.fstat(fd)
    except OSError:  # closed: /dev/null takes its number
        os.dup2(null, fd)
        os.close(null)
        null = fd
    return open(null, "w", encoding="utf-8", errors="backslashreplace", closefd=null != fd)


@contextmanager
def interrupts_held(insist: bool = True) -> Iterator[list[int]]:
    """Hold Ctrl-C (and SIGTERM and SIGHUP, where answered as it) back while the body runs and
    list the signals that came meanwhile.

    Importing torch runs C++ initialisers that call back into Python. A KeyboardInterrupt
    raised in one of them is a C++ exception (pybind11::error_already_set) that nothing
    catches: std::terminate, SIGABRT (exit -6), no message of ours. Seen once in CI
    (`scaler flops all` interrupted 0.4 s after its start) and reproduced by raising the
    interrupt at chosen times during `import scaler.cli`, when it imported torch (a command
    now imports it in `scaler.cli.app.LibraryCommand.invoke`). Held back, the Ctrl-C is
    answered as soon as the imports (torch's: about 1-3 s on 2 cores) are done; a second
    Ctrl-C stops them at once (an import that hangs), unless `insist` is False (a worker
    process, which its parent stops with SIGTERM, then SIGKILL, if it must). A SIGINT that is
    ignored (a job started with `nohup` or in the background) stays ignored, and so does a call
    outside the main thread (which cannot set a handler). SIGTERM and SIGHUP are held as well
    where a Python handler answers them (`scaler.entry`'s, as Ctrl-C): raised inside numpy's
    or torch's import they left it half done ('RecursionError', exit 1)."""
    caught: list[int] = []
    held: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            held[signal.SIGINT] = signal.default_int_handler
        for signum in (signal.SIGTERM, signal.SIGHUP):  # once answered as Ctrl-C (`scaler.entry`): the same harm
            if callable(handler := signal.getsignal(signum)):
                held[signum] = handler
    if not held:
        yield caught
        return

    def hold(signum: int, frame: object) -> None:
        if insist and signum != signal.SIGHUP and signum in caught:  # a second Ctrl-C or SIGTERM: the user insists (an
            held[signum](signum, frame)  # import that hangs), stop now; a hang-up comes twice unasked (`scaler.entry`)
        caught.append(signum)

    for signum in held:
        signal.signal(signum, hold)
    try:
        yield caught
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)


def held_back(load: Callable[[], _T]) -> _T:
    """`load()` (an import) with Ctrl-C held back (`interrupts_held`), then answered: a
    KeyboardInterrupt once it is done, where one came meanwhile."""
    with interrupts_held() as caught:
        value = load()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signum in caught:
            signal.raise_signal(signum)  # answered by its own handler, which the exit code follows
    if caught:
        raise KeyboardInterrupt
    return value
