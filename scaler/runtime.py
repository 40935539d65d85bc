"""Where and how a piece of work runs: device, CPU threads, the decoded-image cache.

These settings never change what a result means (the same seeds give the same proxy on any
device), so they are kept apart from the configuration that identifies a search or a training.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from scaler.errors import UsageError, check_int

if TYPE_CHECKING:  # torch is imported where a device is chosen: the command line starts without it
    import torch

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def device_name(name: str) -> str:
    """A device name as every check reads it: any case, spaces around, empty for 'auto'."""
    return (name or "auto").strip().lower()


def check_device_name(name: object) -> None:
    """UsageError unless `name` is one of DEVICES' forms (`device_name`). Whether it is
    available here is `select_device`'s to say, with torch loaded."""
    text = device_name(name) if isinstance(name, str) else None
    if text not in ("auto", "cpu", "cuda", "mps") and not (text and re.fullmatch(r"cuda:\d+", text)):
        raise UsageError(f"device = {name!r} is not allowed; choose one of {', '.join(DEVICES)}", param="device")


THREADS_PER_CORE = 4  # the most --threads per core: past the cores threads only compete


def check_workers(workers: object) -> None:
    """UsageError unless `workers` (processes that train a study's items) is at least 1."""
    check_int("workers", workers, 1)


@dataclass(frozen=True)
class Runtime:
    """Run-time-only settings of one process: `device` ('auto', 'cpu', 'cuda', 'cuda:N',
    'mps'), `threads` (torch CPU threads; None keeps torch's default) and `cache_dir` (where
    decoded images are cached on disk; None keeps them in memory only)."""

    device: str = "auto"
    threads: int | None = None
    cache_dir: Path | None = None

    def validate(self) -> None:
        """UsageError for a malformed device name or thread count (availability is checked
        by `select_device` when the work starts)."""
        check_device_name(self.device)
        if self.threads is not None:
            check_int("threads", self.threads, 1)
            cores = os.cpu_count() or 1
            if self.threads > THREADS_PER_CORE * cores:
                raise UsageError(f"threads = {self.threads} is not allowed on this machine's {cores} cores; give at most "
                                 f"{THREADS_PER_CORE * cores} ({THREADS_PER_CORE} per core: more only compete, and 999 on "
                                 "2 cores stalled a tiny training past 5 minutes)", param="threads")
        if self.cache_dir is not None:
            path = Path(self.cache_dir).expanduser()
            above = next((p for p in (path, *path.parents) if p.exists()), None)  # what is there of it
            if above is not None and not above.is_dir():
                where = "is a file" if above == path else f"is under {above}, a file"
                raise UsageError(f"cache folder {self.cache_dir} {where}; give a folder (it is created if missing)", param="cache_dir")

    def with_threads(self, threads: int | None) -> Runtime:
        return replace(self, threads=threads)

    def for_worker(self, index: int) -> Runtime:
        """The runtime of local worker `index`: 'cuda' (or 'auto' where CUDA is available)
        becomes one visible GPU per worker, round-robin, so N workers spread over the GPUs;
        a named device ('cuda:1', 'cpu', 'mps') pins every worker to it."""
        return replace(self, device=worker_device(self.device, index, cuda_count()))


def oversubscription(workers: int, threads: int | None) -> str | None:
    """A warning where `workers` processes of `threads` threads each (None: all cores) ask for
    more threads than this machine has cores: they compete, and the work gets slower."""
    cores = os.cpu_count() or 1
    if workers * (threads or cores) > cores:
        asked = f"{workers} worker(s) x {threads or cores} thread(s)" if workers > 1 else f"{threads or cores} threads"
        return f"warning: {asked} on {cores} cores: they will compete"
    return None


def concurrent_workers(workers: int, threads: int | None, device: str) -> int:
    """How many of `workers` processes of `threads` threads each (None: all cores) train at
    once on `device`: all of them on an accelerator; on a CPU as many as the cores hold (at
    least one), since oversubscribed ones only share the same cores."""
    if select_device(device).type != "cpu":
        return workers
    cores = os.cpu_count() or 1
    return max(1, min(workers, cores // (threads or cores)))


def cuda_count() -> int:
    """Visible CUDA devices (CUDA_VISIBLE_DEVICES applies); 0 without CUDA."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_device(device: str, index: int, gpus: int) -> str:
    """The device local worker `index` trains on when the study runs on `device` and `gpus`
    CUDA devices are visible: 'cuda' and 'auto' take GPU `index % gpus`; anything else
    (a pinned 'cuda:N', 'cpu', 'mps', or 'auto' without a GPU) is kept."""
    name = device_name(device)
    if name in ("cuda", "auto") and gpus > 0:
        return f"cuda:{index % gpus}"
    return device


def select_device(name: str = "auto") -> torch.device:
    """'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:N' or 'mps'; UsageError for an
    unknown or unavailable one."""
    import torch

    check_device_name(name)
    name = device_name(name)
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not mps_ok:
            raise UsageError("device = 'mps' is not available here; use 'cpu' or 'auto'", param="device")
        return torch.device("mps")
    count = cuda_count()  # 'cuda' or 'cuda:N'
    index = int(name[5:]) if ":" in name else 0
    if index >= count:
        raise UsageError(f"device = '{name}' is not available here ({count} CUDA "
                         "device(s)); use 'cpu' or 'auto'", param="device")
    return torch.device(name)
