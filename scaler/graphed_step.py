"""The training step replayed as one CUDA graph.

On a GPU a small proxy's step is bound by the host launching its few hundred kernels, not by
the device: the default proxy's step took 35.9 and 39.6 ms eagerly and 4.2 and 4.3 ms captured
whole and replayed (figure 6 of benchmarks/gpu_search.py, two H200 hosts, 2026-12-04). So where
it is safe, training runs its first EAGER_STEPS steps eagerly (they create the optimizer's
state and the libraries' handles, which a capture cannot), captures the next step (forward,
loss, backward, gradient clipping and the optimizer's update), and replays the capture for
that step and every step after, copying each batch into the captured step's input buffers.
The arithmetic is the step's own; only the launching changes. On CUDA, AdamW is built
capturable whether or not the step is replayed (scaler.training.make_optimizer), so that
SCALER_CUDA_GRAPHS never changes a result.

It is safe where nothing in the step reads a value on the host or draws randomness outside
torch's generator, since a graph replays exactly what it recorded:
- CUDA only;
- AdamW only, with its learning rate in a device tensor that the schedule fills before each
  step (SGD and RMSpropTF take the rate as a Python number, which a graph would freeze at its
  first value);
- BatchNorm with a momentum (a cumulative average reads its step counter on the host);
- a network whose own class declares `graph_safe = True`: scaler's networks (no host reads,
  stochastic depth drawn from torch's generator). A factory's network may branch on anything
  in Python, and a graph would replay the one branch it saw; it trains eagerly unless its
  class declares itself safe (a subclass of one of scaler's networks must say so again).
SCALER_CUDA_GRAPHS=0 turns graphs off everywhere (SCALER_CUDA_GRAPHS=1, the default, leaves
them on where safe).

Memory: the graph keeps its own pool for a step's activations and gradients for the whole
training, so the evaluations between epochs allocate beside it rather than in memory the
step has freed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch
from torch import nn

from scaler.errors import UsageError

GRAPHS_ENV = "SCALER_CUDA_GRAPHS"
EAGER_STEPS = 2  # steps run eagerly, on a side stream, before the capture

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (images, labels) -> the batch's loss


def graphs_enabled() -> bool:
    """Whether SCALER_CUDA_GRAPHS allows graphs ("1", the default) or not ("0")."""
    value = os.environ.get(GRAPHS_ENV, "1")
    if value not in ("0", "1"):
        raise UsageError(f"{GRAPHS_ENV}={value!r} is not allowed; use 1 (graphs where safe, the default) or 0 (never)")
    return value == "1"


def can_replay(model: nn.Module, device: torch.device, optimizer: str) -> bool:
    """Whether a training of `model` on `device` under `optimizer` can replay its step as a
    CUDA graph (the module's docstring says why each condition is needed)."""
    cumulative = any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is None for m in model.modules())
    return (device.type == "cuda" and optimizer == "adamw" and not cumulative
            and vars(type(model)).get("graph_safe") is True and graphs_enabled())


class TrainingStep:
    """Runs the training step `step` (forward to update, returning the loss; the gradients
    must be None when it starts) once per batch: eagerly with `zero_grad` before it, or, with
    `graphed`, eagerly for EAGER_STEPS batches on a side stream (as CUDA graphs' warm-up needs),
    then captured on the next batch and replayed from then on.

    `setup_seconds` is how long the eager steps and the capture took, with the device
    synchronised at both ends (0 until a capture): a replayed training's fixed cost, which
    the estimate counts apart from the replayed steps' rate."""

    def __init__(self, step: Step, zero_grad: Callable[[], None], graphed: bool) -> None:
        self.step, self.zero_grad, self.graphed = step, zero_grad, graphed
        self.taken = 0
        self.setup_seconds = 0.0
        self._began = 0.0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._side: torch.cuda.Stream | None = None
        self._buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.taken += 1
        if not self.graphed:
            self.zero_grad()
            return self.step(x, y)
        if self._graph is None and self.taken <= EAGER_STEPS:
            return self._eager_on_side_stream(x, y)
        if self._graph is None:
            self._capture(x, y)
        images, labels, loss = self._buffers
        images.copy_(x)
        labels.copy_(y)
        self._graph.replay()
        return loss

    def _eager_on_side_stream(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self._side is None:
            torch.cuda.synchronize(x.device)
            self._began = time.perf_counter()
            self._side = torch.cuda.Stream(x.device)
        main = torch.cuda.current_stream(x.device)
        self._side.wait_stream(main)
        with torch.cuda.stream(self._side):
            self.zero_grad()
            loss = self.step(x, y)
        main.wait_stream(self._side)
        return loss

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        images, labels = x.clone(), y.clone()  # clone keeps the batch's memory format
        self.zero_grad()  # the graph's backward then writes the gradients in its own memory
        graph = torch.cuda.CUDAGraph()
        # torch.cuda.graph synchronises and captures on the current device's streams unless
        # told otherwise: the batch's device is made current (a worker on cuda:1 does not set
        # it), and the capture runs on the side stream the eager steps used.
        with torch.cuda.device(x.device), torch.cuda.graph(graph, stream=self._side):
            loss = self.step(images, labels)
        torch.cuda.synchronize(x.device)
        self.setup_seconds = time.perf_counter() - self._began
        self._graph, self._buffers = graph, (images, labels, loss)
