"""Run `scaler search` in a child process and time it against the estimate it prints.

Shared by search_cost.py and gpu_search.py. The estimate is printed once the data is ready and
the networks have been timed, and it estimates what is left: it is compared with the time
that followed its line, and the whole run's wall time is reported beside it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from scaler.cli import INTERRUPTED  # what a search exits with after a Ctrl-C

ESTIMATE = re.compile(r"estimated ([0-9.]+) (s|min)\b")


@dataclass(frozen=True)
class SearchRun:
    """A search that ended: its wall time, the estimate it printed, when it printed it, and
    when a time limit stopped it."""

    wall: float
    estimate: float | None  # None when no estimate line was seen
    printed_at: float | None  # seconds after the start; None likewise
    stopped_at: float | None = None  # seconds after the start of the Ctrl-C that ended it; None: not stopped

    def report(self) -> str:
        """Estimate against the time that followed it (goal within +-25%), and the whole run."""
        if self.stopped_at is not None:  # unfinished: the time after the estimate is only a lower bound
            told = ("before it printed an estimate" if self.estimate is None or self.printed_at is None else
                    f"{self.stopped_at - self.printed_at:.0f} s after an estimate of {self.estimate:.0f} s (printed "
                    f"{self.printed_at:.0f} s in: start-up, data, timing the networks)")
            return f"stopped at the time limit after {self.stopped_at:.0f} s, {told}"
        if self.estimate is None or self.printed_at is None:
            return f"no estimate line was printed; whole run {self.wall:.0f} s"
        after = self.wall - self.printed_at
        return (
            f"estimate {self.estimate:.0f} s vs the {after:.0f} s that followed it: "
            f"{self.estimate / after - 1:+.0%} (goal within +-25%); whole run {self.wall:.0f} s, "
            f"of which {self.printed_at:.0f} s before the estimate (start-up, data, timing the networks)"
        )


def run_search(command: list[str], env: dict[str, str] | None = None,
               echo: Callable[[str], None] | None = None,
               limit: float | None = None) -> tuple[SearchRun, int]:
    """Run `command` (a search with `--quiet`), echo each output line, and return the run and
    its exit code. After `limit` seconds the search and its workers get a Ctrl-C (SIGINT to
    their process group, which this process's own Ctrl-C no longer reaches, so it passes its
    own on), as a user would stop them: it keeps what finished and exits 130. A search that
    ends otherwise (finished first, or failed) is not reported as stopped."""
    start = time.perf_counter()
    estimate: float | None = None
    printed_at: float | None = None
    # In a session of its own (the group the limit signals), and with Ctrl-C acted on even
    # where this process was started with it ignored (`nohup`, `&` in a script).
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200", **(env or {})}, start_new_session=limit is not None,
                            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if limit is not None else None)
    assert proc.stdout is not None
    sent: list[float] = []

    def interrupt() -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(proc.pid, signal.SIGINT)
                sent.append(time.perf_counter() - start)

    timer = threading.Timer(limit, interrupt) if limit is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        for line in proc.stdout:
            if echo is not None:
                echo(line.rstrip())
            found = ESTIMATE.search(line)
            if found and estimate is None:
                estimate = float(found.group(1)) * (60 if found.group(2) == "min" else 1)
                printed_at = time.perf_counter() - start
        code = proc.wait()
    finally:  # also when this process is interrupted: the search, in its own session, is stopped too
        if timer is not None:
            timer.cancel()
            interrupt()
            proc.wait()
    stopped = sent[0] if sent and code in (INTERRUPTED, -signal.SIGINT) else None
    return SearchRun(time.perf_counter() - start, estimate, printed_at, stopped), code
