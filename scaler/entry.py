"""The `scaler` console script: imports the command line only once a Ctrl-C can be answered
with one line, and keeps a reader that goes away (`scaler ... | head`) from failing a command."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class ReaderSafeStream:
    """Standard output that turns a closed reader (EPIPE) into silence: writes after that go
    nowhere, and the command, a search included, carries on and exits as it would have.
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


def run() -> None:
    """Console-script entry point."""
    sys.stdout = ReaderSafeStream(sys.stdout)  # type: ignore[assignment]
    try:
        from scaler.cli import main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
