"""Errors the library raises on purpose, so the CLI can map them to exit codes.

`UsageError` means the input was wrong (exit 2); `RunError` means valid input failed at run
time (exit 1). Both carry one line that says what was wrong and what is allowed.
"""

from __future__ import annotations


class ScalerError(Exception):
    """Base of the errors scaler raises deliberately; its message is one line for the user."""

    exit_code = 1


class UsageError(ScalerError):
    """Bad input: a value out of range, an unknown name, a malformed spec (exit code 2)."""

    exit_code = 2


class RunError(ScalerError):
    """Valid input that could not be carried out: unwritable folder, unreachable storage (exit 1)."""

    exit_code = 1
