"""How a study's processes take Ctrl-C and SIGTERM without leaving their records half made.

A signal answered in Python raises KeyboardInterrupt between any two bytecodes. Where that
would leave a record of the study half made, the signal is held back until the step is done
(`signals_held`): a trial taken from the queue but not yet in the taker's hands (it stayed
RUNNING, and the next run counted that as a death of its item), or a journal write cut
inside Optuna's file lock (the lock stayed, and every later write waited out its 30 s grace).
A worker process answers only the first signal (`interrupt_once`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while the body runs, then answer them as they would have
    been, by their own handlers. A second Ctrl-C stops at once (a storage that hangs). Main
    thread only (the only one that can set handlers, and the one signals interrupt), for
    handlers set in Python."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    previous = {s: handler for s, handler in previous.items() if callable(handler)}
    if threading.current_thread() is not threading.main_thread() or not previous:
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if signum == signal.SIGINT and signum in caught:
            raise KeyboardInterrupt
        caught.append(signum)

    for signum in previous:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)  # answered by its own handler, now put back


def interrupt_once() -> Callable[[int, object], None]:
    """A handler for Ctrl-C and SIGTERM that raises KeyboardInterrupt the first time only: a
    worker process often gets both (a terminal's Ctrl-C reaches the whole process group, and
    the parent then sends SIGTERM), and a second interrupt would cut short the marking of its
    item as interrupted, which the first set going."""
    stopping: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        if not stopping:
            stopping.append(signum)
            raise KeyboardInterrupt

    return interrupt
