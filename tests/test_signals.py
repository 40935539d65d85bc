"""How a study's processes hold Ctrl-C, SIGTERM and SIGHUP over a step that must not be cut
(scaler.study.signals), in this process's main thread, with real signals; and the standard
streams that outlive their reader (scaler.process)."""

from __future__ import annotations

import errno
import io
import signal

import pytest

from scaler.process import ReaderSafeStream
from scaler.study import signals


class Terminated(Exception):
    """What this file's SIGTERM handler raises, told apart from a Ctrl-C."""


def terminated(signum: int, frame: object) -> None:
    raise Terminated


@pytest.fixture
def sigterm_raises():
    previous = signal.signal(signal.SIGTERM, terminated)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_signals_are_answered_after_the_body_sigterm_first(sigterm_raises):
    """Both held, both answered by their own handlers once the body is done; SIGTERM first,
    so a command stopped by both exits as SIGTERM says (143, not 130)."""
    done = []
    with pytest.raises(Terminated):
        with signals.signals_held():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)
            done.append(1)  # not cut short
    assert done == [1]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (signal.default_int_handler, terminated)


def test_a_second_ctrl_c_insists_where_ctrl_c_is_python_s_own_only(sigterm_raises):
    with pytest.raises(KeyboardInterrupt):
        with signals.signals_held():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # a user insisting: stops here
            pytest.fail("the second Ctrl-C did not stop the body")
    interrupt = signals.interrupt_once()
    previous = signal.signal(signal.SIGINT, interrupt)  # a worker process's
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with signals.signals_held():
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)  # a worker answers one signal, after the body
                done.append(1)
        assert done == [1] and signal.getsignal(signal.SIGINT) is interrupt
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_signal_answered_while_the_handlers_are_put_back_leaves_none_held(sigterm_raises, monkeypatch):
    """`signal.signal` first answers a pending signal, and where that raises, sets nothing:
    SIGTERM stayed held for good, every later `kill` swallowed. Here the first putting back
    of SIGTERM meets a Ctrl-C already answered by its own handler."""
    real = signal.signal
    met = []

    def answering_first(signum, handler):
        if handler is terminated and not met:
            met.append(signum)
            raise KeyboardInterrupt  # what the pending Ctrl-C's handler raised; SIGTERM not set
        return real(signum, handler)

    monkeypatch.setattr(signal, "signal", answering_first)
    with pytest.raises(KeyboardInterrupt):
        with signals.signals_held():
            pass
    monkeypatch.undo()
    assert met == [signal.SIGTERM]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (signal.default_int_handler, terminated)


def test_an_ignored_or_default_signal_is_left_as_it_is():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with signals.signals_held():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)  # ignored, as before
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sighup_is_answered_as_ctrl_c_unless_nohup_ignores_it():
    """A terminal that closes sends SIGHUP; under `nohup` it is ignored, and stays so."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        assert signals.answer_as_ctrl_c(handler) == [signal.SIGTERM] and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        assert signals.answer_as_ctrl_c(handler) == [signal.SIGTERM, signal.SIGHUP]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGHUP)
        caught = []
        signal.signal(signal.SIGHUP, lambda signum, frame: caught.append(signum))
        with signals.signals_held():  # held over a step that must not be cut, like SIGTERM
            signal.raise_signal(signal.SIGHUP)
            assert caught == []
        assert caught == [signal.SIGHUP]
    finally:
        for signum, handler_before in saved.items():
            signal.signal(signum, handler_before)


@pytest.mark.parametrize("error, silenced", [(BrokenPipeError(errno.EPIPE, "pipe"), True), (OSError(errno.EIO, "hung up"), True),
                                             (OSError(errno.ENOSPC, "full"), False)])
def test_a_stream_whose_reader_is_gone_is_silenced_other_errors_are_raised(error, silenced):
    """A terminal that hung up answers writes with EIO, as a closed pipe does with EPIPE:
    the command goes on (and ends as interrupted) rather than failing on a progress line."""
    class Failing(io.StringIO):
        def write(self, text: str) -> int:
            raise error

    stream = ReaderSafeStream(Failing())
    if silenced:
        assert stream.write("progress") == len("progress") and stream.reader_gone
    else:
        with pytest.raises(OSError, match="full"):
            stream.write("progress")


def test_sigterm_and_sighup_answered_as_ctrl_c_wait_for_an_import():
    """Raised inside numpy's or torch's import (`held_back`), their KeyboardInterrupt left it
    half done: 'RecursionError' or 'cannot load module more than once', exit 1, not 143/129."""
    from scaler.process import held_back

    raised: list[int] = []

    def handler(signum: int, frame: object) -> None:
        raised.append(signum)
        raise KeyboardInterrupt

    inside: list[list[int]] = []

    def load() -> int:
        signal.raise_signal(signal.SIGHUP)
        inside.append(list(raised))
        return 1

    saved = signal.signal(signal.SIGHUP, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            try:
                held_back(load)
            except KeyboardInterrupt:
                assert inside, "the SIGHUP interrupted the import itself"
                raise
        assert inside == [[]] and raised == [signal.SIGHUP] and signal.getsignal(signal.SIGHUP) is handler
    finally:
        signal.signal(signal.SIGHUP, saved)


def test_a_hang_up_sent_twice_is_answered_once(monkeypatch):
    """A closed terminal's SIGHUP comes twice (the shell passes it on, the kernel sends it as
    the shell exits): the second cut short the stop of the worker processes (SIGKILL), and
    their items stayed running, counted as deaths by the next run."""
    from scaler import entry

    monkeypatch.setattr(entry, "_terminated_by", None)
    with pytest.raises(KeyboardInterrupt):
        entry._terminate(signal.SIGHUP, None)
    try:
        entry._terminate(signal.SIGHUP, None)  # the second copy: no second interrupt
    except KeyboardInterrupt:
        pytest.fail("a second SIGHUP interrupted the stop again")
    with pytest.raises(KeyboardInterrupt):  # a SIGTERM after it still stops
        entry._terminate(signal.SIGTERM, None)
    assert entry._terminated_by == signal.SIGHUP  # the exit code is the first signal's (129)
