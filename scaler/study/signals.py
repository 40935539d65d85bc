"""How a study's processes take Ctrl-C, SIGTERM and SIGHUP without leaving their records half made.

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
from typing import Any


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP back while the body runs, then answer them as they would
    have been, by their own handlers (SIGTERM, SIGHUP, then Ctrl-C: a command stopped by more
    than one exits as the first of these did). A second Ctrl-C stops at once where Ctrl-C is Python's own (a user at a terminal
    insisting, a storage that hangs), never in a worker process, which answers one signal.
    Main thread only (the only one that can set handlers, and the one signals interrupt), for
    handlers set in Python."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    previous = {s: handler for s, handler in previous.items() if callable(handler)}
    if threading.current_thread() is not threading.main_thread() or not previous:
        yield
        return
    insist = previous.get(signal.SIGINT) is signal.default_int_handler
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if insist and signum == signal.SIGINT and signum in caught:
            raise KeyboardInterrupt
        caught.append(signum)

    installed: list[int] = []
    try:
        for signum in previous:
            signal.signal(signum, hold)
            installed.append(signum)
        yield
    finally:
        _put_back({signum: previous[signum] for signum in installed})
        for signum in previous:  # SIGTERM, SIGHUP, then SIGINT: the first answer raises
            if signum in caught:
                signal.raise_signal(signum)


def _put_back(handlers: dict[int, Any]) -> None:
    """Set each handler, whatever signal comes meanwhile: `signal.signal` first answers a
    pending signal, and where that answer raises (a handler already put back), the handler is
    not set; it is set on the next try, and the first such exception raised at the end."""
    raised: BaseException | None = None
    for signum, handler in handlers.items():
        while True:
            try:
                signal.signal(signum, handler)
                break
            except BaseException as exc:  # noqa: BLE001 - kept, and raised once every handler is back
                raised = raised or exc
    if raised is not None:
        raise raised


def answer_as_ctrl_c(handler: Callable[[int, object], None]) -> list[int]:
    """Set `handler` (one that raises KeyboardInterrupt) for SIGTERM, and for SIGHUP (a
    terminal closed, an ssh connection dropped: its processes get it) unless it is ignored
    (`nohup`: the command carries on when its terminal closes, as it asked); the signals set."""
    answered = [signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        answered.append(signal.SIGHUP)
    for signum in answered:
        signal.signal(signum, handler)
    return answered


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
