"""Errors the library raises on purpose, so the CLI can map them to exit codes.

`UsageError` means the input was wrong (exit 2); `RunError` means valid input failed at run
time (exit 1). Both carry one line that says what was wrong and what is allowed. `check_int`
is the one wording of an integer out of range.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# Set by `scaler --debug`, so that worker processes show their tracebacks too.
DEBUG_ENV = "SCALER_DEBUG"


class ScalerError(Exception):
    """Base of the errors scaler raises deliberately; its message is one line for the user.

    `param` names the library parameter at fault (e.g. "batch_size"), so a front end can name
    its own flag for it.
    """

    exit_code = 1

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UsageError(ScalerError):
    """Bad input: a value out of range, an unknown name, a malformed spec (exit code 2)."""

    exit_code = 2


class Interrupted(ScalerError):
    """Stopped by the user (Ctrl-C); the message says what was kept and how to resume (exit 130)."""

    exit_code = 130


class RunError(ScalerError):
    """Valid input that could not be carried out: unwritable folder, unreachable storage (exit 1)."""

    exit_code = 1


@contextlib.contextmanager
def attributed_to(param: str) -> Iterator[None]:
    """Make the UsageErrors raised inside that name no parameter `param`'s: a fault found
    deep in what one input names (a data folder, a search folder) is that input's."""
    try:
        yield
    except UsageError as exc:
        if exc.param:
            raise
        raise UsageError(str(exc), param=param) from None


def check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    """UsageError (naming `name` as its param) unless `value` is an int, not a bool, in
    [low, high]; no upper bound when `high` is None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"from {low} to {high}"
        raise UsageError(f"{name} = {value!r} is not allowed; it must be an integer {allowed}", param=name)


def interrupted_by_user(exc: BaseException | None) -> bool:
    """Whether `exc` is a Ctrl-C, or an error raised while one was being handled: a library's
    clean-up that failed halfway (optuna releasing a journal lock it never took raises
    FileNotFoundError in place of the KeyboardInterrupt)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False
