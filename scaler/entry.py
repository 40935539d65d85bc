"""The `scaler` console script: imports the command line with Ctrl-C held back (it is answered
with one line once the imports are done), keeps a reader that goes away (`scaler ... | head`)
from failing a command (`scaler.process`), and answers SIGTERM and SIGHUP as Ctrl-C."""

from __future__ import annotations

import importlib
import signal
import sys

from scaler.process import guard_streams, held_back
from scaler.study.signals import answer_as_ctrl_c


_terminated_by: int | None = None  # the signal answered as Ctrl-C: the exit code is 128 + it, as a shell reports it


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (`kill`, `timeout`, `docker stop`, a batch scheduler) and SIGHUP (the terminal
    closed, an ssh connection dropped) are answered as Ctrl-C is: the item in flight is marked
    interrupted and one line says how to resume. Local worker processes are sent SIGTERM as
    the study stops (`scaler.study.runner._stop`), and answer both the same way."""
    global _terminated_by
    if signum == signal.SIGHUP and _terminated_by is not None:
        # a hang-up comes twice (the shell passes it on to its jobs, the kernel sends it as the
        # shell exits), a millisecond apart: one answer, or the second cut short the stop of the
        # worker processes (SIGKILL: items left running, counted as deaths by the next run)
        return
    if _terminated_by is None:  # the exit code is the first signal's
        _terminated_by = signum
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
    answered = [signal.SIGTERM]
    try:
        main = held_back(lambda: importlib.import_module("scaler.cli").main)
        answered = answer_as_ctrl_c(_terminate)
        code = main()
    except KeyboardInterrupt:  # held during the imports, a second one, or one before main's own handling
        print("interrupted", file=sys.stderr)
        code = 130
    # The command is done and has said so. A signal now would only make its exit code a kill's,
    # with no line: the interpreter's teardown (up to a second with torch loaded) restores the
    # default handlers first, and leaves only an ignored signal ignored.
    for signum in (signal.SIGINT, *answered):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(128 + _terminated_by if _terminated_by is not None and code == 130 else code)
