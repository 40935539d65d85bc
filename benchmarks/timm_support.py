"""What the benchmarks share: timm without torchvision, the pure SGD step rate of a model, and
the machine's reference rate (timm's efficientnet_b0 at 128 px, batch 32, 10 classes).

timm is optional and not a project dependency. To include it without touching the project's
environment: `pip install --no-deps --target /tmp/timm_pkgs timm`, then pass that folder as
`--timm-path /tmp/timm_pkgs`. timm imports torchvision at import time; when torchvision is
missing (or broken) `import_timm` puts an empty stand-in module in its place, enough for
timm.create_model('efficientnet_b0'), which uses nothing from it.

The reference rate normalises wall times for the machine: a 2-core machine that is twice as
fast runs a search in half the time and timm's step at twice the rate, so wall time x rate
(in images of timm's step) compares across machines.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import time
import types

import torch
import torch.nn.functional as F

from scaler.conv_backend import conv_backend, resolve

REFERENCE = "timm efficientnet_b0, 128 px, batch 32, channels_last, 10 classes, drop-path 0.2, plain SGD"


def step_rate(model, resolution: int, batch: int, steps: int, warmup: int,
              device: str = "cpu", bf16: bool = False, policy: str = "channels-last") -> float:
    """Images/s of plain SGD training steps on random data on `device` (bf16 autocast when
    `bf16`; on cuda the clock waits for the GPU before and after), laid out by `policy`
    (scaler.conv_backend; timm's own benchmarks use channels-last)."""
    device = torch.device(device)
    model.train()
    model.to(device=device)
    with conv_backend(model, resolve(policy, resolution)) as layout:
        return _timed_steps(model, resolution, batch, steps, warmup, device, bf16, layout)


def _timed_steps(model, resolution, batch, steps, warmup, device, bf16, layout) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                          foreach=True)
    x = torch.randn(batch, 3, resolution, resolution, device=device).contiguous(memory_format=layout)
    n_out = next(m for m in reversed(list(model.modules()))
                 if isinstance(m, torch.nn.Linear)).out_features
    y = torch.randint(0, n_out, (batch,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def one():
        with autocast:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        one()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    sync()
    return batch * steps / (time.perf_counter() - start)


class _StubMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubMeta(name, (), {"__init__": lambda self, *a, **k: None})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubMeta(name, (), {"__init__": lambda self, *a, **k: None})


class _TorchvisionStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every `import torchvision...` with an empty module of placeholder classes."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        module.__version__ = "0.0.0-stub"
        return module

    def exec_module(self, module):
        pass


def import_timm(path: str | None):
    """(timm, note) or (None, why not)."""
    if path:
        sys.path.insert(0, path)
    try:
        import timm  # noqa: F401
        return timm, ""
    except ModuleNotFoundError as e:
        if e.name is None or not e.name.startswith("torchvision"):
            return None, f"timm is not importable ({e})"
    except Exception as e:  # a broken torchvision raises other errors
        if "torchvision" not in repr(e):
            return None, f"timm is not importable ({type(e).__name__}: {e})"
    for name in [m for m in sys.modules if m == "timm" or m.startswith(("timm.", "torchvision"))]:
        del sys.modules[name]
    sys.meta_path.insert(0, _TorchvisionStub())
    try:
        import timm
        return timm, "torchvision stubbed"
    except Exception as e:
        return None, f"timm is not importable even with torchvision stubbed ({e})"


def reference_rate(timm, threads: int = 2, steps: int = 6, warmup: int = 3,
                   rounds: int = 2) -> float:
    """The machine's reference: timm's efficientnet_b0 step rate (REFERENCE), images/s, best of
    `rounds` (on a shared machine noise only ever slows a round down). Uses `threads` threads
    and restores the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        # drop-path 0.2, as REFERENCE.md's figures (55-61 and 108 img/s) were measured; figures
        # before 2026-12-05 had none, which ran 1-4% faster (alternating rounds, machine B)
        model = timm.create_model("efficientnet_b0", num_classes=10, drop_path_rate=0.2)
        return max(step_rate(model, 128, 32, steps, warmup if r == 0 else 1)
                   for r in range(rounds))
    finally:
        torch.set_num_threads(previous)
