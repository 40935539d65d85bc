"""Whether work fits in this machine's memory, checked before it starts.

On a CPU, a process that asks for more memory than the machine has is ended by the kernel's
out-of-memory killer, with no message and exit code 137, and whatever it was doing is lost.
So images to store and trainings are measured against the memory available first, and work
that cannot fit is refused in one line while the tool can still say why. On CUDA, torch
raises its own out-of-memory error, which `training.train` turns into that line already.

Both checks count a lower bound (what the work needs at the least), so they refuse only
work that cannot fit; work that passes may still run out, near the limit.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from scaler.errors import RunError
from scaler.random_state import generators_kept

# A training's saved activations, over its input batch's bytes: 130-150 for B0, ResNet-50 and
# MobileNetV2, 1,090 for B8, 2,970 for L2 (each measured at 64 and 256 px; a test keeps every
# built-in network below this). Where activations are known to be under AT_RISK times the
# input, and that is under the memory available, they are not counted: counting takes
# 0.6-1.1 s for B0, and 1-3 s more for the first count in a process. A network whose ratio exceeds
# AT_RISK can be missed only where it needs less than ratio / AT_RISK times what is available.
AT_RISK = 4096


def available_bytes(proc: Path = Path("/proc"), cgroups: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory this process can still take: the kernel's MemAvailable, capped by the
    headroom of every memory cgroup the process is in (its own and each above it, cgroup v1
    or v2), file cache counted as free since the kernel drops it before killing anything
    (shared memory aside, which it cannot drop).
    None where nothing can be read (not Linux)."""
    figures = []
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                figures.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        memberships = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        memberships = []
    for line in memberships:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and not controllers:  # cgroup v2
            base, names = cgroups, ("memory.max", "memory.current", "file", "shmem")
        elif "memory" in controllers.split(","):  # cgroup v1
            base, names = cgroups / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_cache", "total_shmem")
        else:
            continue
        folder = base / path.strip("/")
        while True:
            figures.extend(_headroom(folder, *names))
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return min(figures) if figures else None


def _headroom(folder: Path, limit_name: str, usage_name: str, cache_key: str, shared_key: str) -> list[int]:
    """[limit - usage + file cache] of one cgroup folder, the cache without its shared memory
    (tmpfs, /dev/shm: counted in the cache, yet the kernel cannot drop it without swap);
    [] without a limit or where unreadable."""
    try:
        limit = (folder / limit_name).read_text().strip()
        if limit == "max" or int(limit) >= 2**60:  # v1 writes "no limit" as about 2**63
            return []
        usage = int((folder / usage_name).read_text())
        stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines() if line.strip())
        droppable = max(0, int(stat.get(cache_key, 0)) - int(stat.get(shared_key, 0)))
        return [max(0, int(limit) - usage + droppable)]
    except (OSError, ValueError):
        return []


def size_text(nbytes: float) -> str:
    """Bytes as GiB with two decimals, or MiB below one GiB."""
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def check_images_fit(count: int, resolution: int, source: str, copies: int = 1) -> None:
    """RunError when `count` RGB images of `resolution` px, stored as bytes, `copies` times over
    while they are loaded, cannot fit in the memory available."""
    needed = copies * count * 3 * resolution * resolution
    available = available_bytes()
    if available is not None and needed > available:
        twice = f" (held {copies} times over while decoded)" if copies > 1 else ""
        raise RunError(f"data set {source} stored at {resolution} px needs {size_text(needed)} "
                       f"for its {count:,} images{twice}; {size_text(available)} of memory is "
                       "available: lower the resolution or use fewer images")


def check_training_fits(model: nn.Module, batch_size: int, resolution: int, device: torch.device) -> None:
    """RunError when training `model` on batches of `batch_size` images of `resolution` px on
    the CPU needs more memory than is available: at the least the activations a step keeps
    for its backward pass, and a gradient and one optimizer state per trained weight (the
    weights themselves are in memory already)."""
    if device.type != "cpu":
        return
    available = available_bytes()
    states = 2 * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    # Activations known to be under AT_RISK times the input, plus the states, fit: nothing to
    # count (the states left out let a network heavy in weights at a small input through)
    if available is None or batch_size * 3 * resolution * resolution * 4 * AT_RISK + states <= available:
        return
    activations = saved_activation_bytes(model, batch_size, resolution)
    if activations is None:
        return
    needed = activations + states
    if needed > available:
        raise RunError(f"training at {resolution} px with batch {batch_size} needs at least "
                       f"{size_text(needed)} of memory ({size_text(activations)} of activations); "
                       f"{size_text(available)} is available: lower the resolution or the batch size")


def saved_activation_bytes(model: nn.Module, batch_size: int, resolution: int) -> int | None:
    """Bytes of the tensors one training step of `model` keeps for its backward pass, counted
    on a copy made of fake CPU tensors (shapes only: no arithmetic, no memory; CPU kernels'
    choices, such as what attention saves, are those of a real step). The model and every
    random generator are left as they were. None when the network cannot run on fake tensors
    (a forward that reads values, say)."""
    try:
        with generators_kept(), FakeTensorMode(allow_non_fake_inputs=True) as mode:
            # The copy's weights are fake from the start: copying the real ones first would
            # take memory exactly when it is short.
            memo: dict[int, object] = {
                id(t): nn.Parameter(mode.from_tensor(t.detach()), t.requires_grad)
                if isinstance(t, nn.Parameter) else mode.from_tensor(t)
                for t in (*model.parameters(), *model.buffers())
            }
            shadow = copy.deepcopy(model, memo).train()
            return count_saved(shadow, torch.empty(batch_size, 3, resolution, resolution))
    except Exception:  # noqa: BLE001  (a guard: a network it cannot count is trained as before)
        return None


def count_saved(model: nn.Module, batch: torch.Tensor) -> int:
    """Bytes of the tensors a forward of `batch` through `model` saves for backward, its own
    weights and buffers left out; each storage once, however many views of it are saved."""
    weights = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in weights:
            saved[storage._cdata] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(batch)
    return sum(saved.values())

