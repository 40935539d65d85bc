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

from scaler.errors import RunError

GIB = 2**30
# A training's activations are at least its input batch; on the built-in networks they are
# 80-170 times it. Below AT_RISK times the input, the activations are not worth counting.
AT_RISK = 256


def available_bytes() -> int | None:
    """The memory this process can still take: the kernel's MemAvailable, capped by the memory
    cgroup's limit when a container sets one. None where neither can be read (not Linux)."""
    figures = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                figures.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < 2**60:  # cgroup v1 writes "no limit" as ~2**63
                figures.append(max(0, int(limit) - int(Path(usage_file).read_text())))
        except (OSError, ValueError):
            continue
    return min(figures) if figures else None


def check_images_fit(count: int, resolution: int, source: str) -> None:
    """RunError when `count` RGB images of `resolution` px, stored as bytes, cannot fit in the
    memory available."""
    needed = count * 3 * resolution * resolution
    available = available_bytes()
    if available is not None and needed > available:
        raise RunError(f"data set {source} stored at {resolution} px needs {needed / GIB:.1f} GiB "
                       f"for its {count:,} images; {available / GIB:.1f} GiB of memory is "
                       "available: lower the resolution or use fewer images")


def check_training_fits(model: nn.Module, batch_size: int, resolution: int, device: torch.device) -> None:
    """RunError when training `model` on batches of `batch_size` images of `resolution` px on
    the CPU needs more memory than is available: at the least its parameters and their
    gradients, and the activations a step keeps for its backward pass."""
    if device.type != "cpu":
        return
    available = available_bytes()
    if available is None or batch_size * 3 * resolution * resolution * 4 * AT_RISK < available:
        return
    activations = saved_activation_bytes(model, batch_size, resolution)
    if activations is None:
        return
    weights = 2 * sum(p.numel() * p.element_size() for p in model.parameters())
    needed = activations + weights
    if needed > available:
        raise RunError(f"training at {resolution} px with batch {batch_size} needs at least "
                       f"{needed / GIB:.1f} GiB of memory ({activations / GIB:.1f} GiB of "
                       f"activations); {available / GIB:.1f} GiB is available: lower the "
                       "resolution or the batch size")


def saved_activation_bytes(model: nn.Module, batch_size: int, resolution: int) -> int | None:
    """Bytes of the tensors one training step of `model` keeps for its backward pass, counted
    on a copy on torch's meta device (shapes only, no arithmetic, no memory). None when the
    network cannot run there (a forward that reads values, say)."""
    saved: dict[int, int] = {}
    try:
        shadow = copy.deepcopy(model).to(device="meta").train()
        weights = {t.untyped_storage()._cdata for t in (*shadow.parameters(), *shadow.buffers())}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage._cdata not in weights:  # counted with the parameters
                saved[storage._cdata] = storage.nbytes()  # views of one storage count once
            return tensor

        x = torch.empty(batch_size, 3, resolution, resolution, device="meta")
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            shadow(x)
    except Exception:  # noqa: BLE001  (a guard: a network it cannot count is trained as before)
        return None
    return sum(saved.values())
