"""The `scaler` console script: imports the command line with Ctrl-C held back (it is answered
with one line once the imports are done), and keeps a reader that goes away
(`scaler ... | head`) from failing a command."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

_T = TypeVar("_T")


class ReaderSafeStream:
    """Standard output or error that turns a closed reader (EPIPE: `| head`, a `tee` stopped)
    into silence: writes after that go nowhere, and the command, a search included, carries on
    and exits as it would have.
    Everything else (isatty, fileno, encoding, ...) is the real stream's, so a terminal is
    still seen as one."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
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
    # A stream closed at start-up (`2>&-`, a daemon) is None: print() then falls back as Python does
    if sys.stdout is not None and not isinstance(sys.stdout, ReaderSafeStream):
        sys.stdout = ReaderSafeStream(sys.stdout)  # type: ignore[assignment]
    if sys.stderr is not None and not isinstance(sys.stderr, ReaderSafeStream):
        sys.stderr = ReaderSafeStream(sys.stderr)  # type: ignore[assignment]


@contextmanager
def interrupts_held(insist: bool = True) -> Iterator[list[int]]:
    """Hold Ctrl-C back while the body runs and list the signals that came meanwhile.

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
    outside the main thread (which cannot set a handler)."""
    caught: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler or threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def hold(signum: int, frame: object) -> None:
        if caught and insist:  # a second Ctrl-C: the user insists (an import that hangs), stop now
            raise KeyboardInterrupt
        caught.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


def held_back(load: Callable[[], _T]) -> _T:
    """`load()` (an import) with Ctrl-C held back (`interrupts_held`), then answered: a
    KeyboardInterrupt once it is done, where one came meanwhile."""
    with interrupts_held() as caught:
        value = load()
    if caught:
        raise KeyboardInterrupt
    return value


TERMINATED = 143  # exit code of a command stopped by SIGTERM (128 + 15), as a shell reports it
_terminated = False


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (`kill`, `timeout`, `docker stop`, a batch scheduler) is answered as Ctrl-C is:
    the item in flight is marked interrupted and one line says how to resume. Local worker
    processes are sent SIGTERM as the study stops (`scaler.study.runner._stop`), and answer it
    the same way."""
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


# Set when this process was started to run one command (the console script, `python -m
# scaler`), not when a long-lived process (a notebook, a test) calls scaler.cli.main: only then
# is the process's age what each worker process repeats before it trains (the estimate).
STARTED_FOR_ONE_COMMAND = False


def run() -> None:
    """Console-script entry point."""
    global STARTED_FOR_ONE_COMMAND
    STARTED_FOR_ONE_COMMAND = True
    guard_streams()
    try:
        main = held_back(lambda: importlib.import_module("scaler.cli").main)
        signal.signal(signal.SIGTERM, _terminate)
        code = main()
    except KeyboardInterrupt:  # held during the imports, a second one, or one before main's own handling
        print("interrupted", file=sys.stderr)
        code = 130
    # The command is done and has said so. A signal now would only make its exit code a kill's,
    # with no line: the interpreter's teardown (up to a second with torch loaded) restores the
    # default handlers first, and leaves only an ignored signal ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(TERMINATED if _terminated and code == 130 else code)
