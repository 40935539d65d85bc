"""The entry of a local worker process, which `runner` starts with multiprocessing's spawn.

Nothing heavy is imported before it runs: its arguments are plain data, and its own imports
(torch and the study engine, seconds on 2 cores) run with Ctrl-C held back. A terminal's
Ctrl-C reaches every process of the group, and one that landed in a child's imports printed
that child's traceback, while the parent answers a Ctrl-C with one line.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any


def worker_entry(storage_url: str, name: str, folder: Path | None, runtime: dict[str, Any], parent: int) -> None:
    """Watch the parent, import what a worker needs with every Ctrl-C held back (a second one
    would raise inside torch's initialisers: a traceback, or an abort), then work
    (`runner.worker_process`); an interrupt during the imports ends the process as one during
    the work does (code 130)."""
    _die_with_parent(parent)
    from scaler.process import guard_streams, interrupts_held

    guard_streams()

    with interrupts_held(insist=False) as caught:
        from scaler.runtime import Runtime
        from scaler.study.runner import worker_process
    if caught:
        raise SystemExit(130)
    worker_process(storage_url, name, folder, Runtime(**runtime))


def _die_with_parent(parent: int, poll_seconds: float = 0.5, grace: float = 10.0) -> None:
    """End this worker process as soon as the process `parent` that started it is gone (also
    when it died while this one was still starting): without its parent nobody holds the
    folder's lock, so it must not go on training and writing the journal. It is sent SIGTERM,
    which marks the item in flight interrupted, a stop that is not its item's fault (left
    running, the next run counted it as a death, and three parent kills in a row failed an
    innocent item); one that does not end within `grace` seconds exits. Watched before the
    imports, which take seconds on a loaded machine: an orphan outlived its parent by that."""
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)  # during the imports: ends the process at once
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=watch, name="scaler-parent-watch", daemon=True).start()
