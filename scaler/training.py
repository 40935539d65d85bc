"""Short proxy training of a model on a `Dataset`: the measurement behind every grid point.

`train` never re-initialises the model: callers seed (`seed_everything`) BEFORE building it, so
that a seed fixes the initial weights; `TrainConfig.seed` then fixes the batch order, the
augmentation and dropout / stochastic depth. On the CPU the same seed (and thread count)
gives identical metrics.
"""

from __future__ import annotations

import hashlib
import math
import random
import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scaler.conv_backend import conv_backend, policy_for
from scaler.data import MIN_TRAIN_IMAGES, Dataset, eval_batches, train_batches
from scaler.errors import RunError, UsageError, check_int
from scaler.files import json_ready
from scaler.graphed_step import TrainingStep, can_replay
from scaler.memory import check_training_fits
from scaler.runtime import Runtime, select_device
from scaler.scaling import MAX_RESOLUTION, MIN_TRAIN_RESOLUTION
from scaler.states import State
from scaler.statistics import pack_correct
from scaler.train_config import TrainConfig

# How often (in optimizer steps) a CUDA run syncs to check the loss and report progress.
CUDA_SYNC_EVERY = 25


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch: mean training loss, validation top-1/top-5 (fractions in [0, 1]; top5 None
    with 5 classes or fewer, where it is always 100%) and loss (plain cross-entropy), training images/s, the epoch's
    wall time (training + evaluation) and the peak memory so far in MB."""

    epoch: int
    train_loss: float
    top1: float
    top5: float | None
    val_loss: float
    images_per_s: float
    seconds: float
    peak_memory_mb: float


@dataclass(frozen=True)
class TrainResult:
    """The outcome: state COMPLETE, DIVERGED, PRUNED (stopped by the caller) or TIMEOUT, the
    reason ("" when complete), the finished epochs, the device, wall time and mean training
    images/s."""

    state: State
    reason: str
    epochs: tuple[EpochMetrics, ...]
    device: str
    train_seconds: float
    images_per_s: float
    steps: int = 0  # optimizer steps taken
    lr: float = field(default=math.nan)  # the schedule's peak learning rate (a run stopped in its warmup never reached it)
    # Per-image top-1 correctness of the last evaluation, packed (scaler.statistics.pack_correct):
    # what paired comparisons of candidates on the same validation images need.
    val_correct: str = ""
    # Seconds of the eager steps and the capture before a training replays its step as a CUDA
    # graph (scaler.graphed_step), inside `train_seconds`; 0 for a training that never does.
    setup_seconds: float = 0.0

    @property
    def top1(self) -> float:
        return self.epochs[-1].top1 if self.epochs else math.nan

    @property
    def top5(self) -> float | None:
        return self.epochs[-1].top5 if self.epochs else None

    @property
    def val_loss(self) -> float:
        return self.epochs[-1].val_loss if self.epochs else math.nan

    def to_dict(self) -> dict:
        """JSON-ready (non-finite floats become None)."""
        out = asdict(self)
        out["epochs"] = [asdict(e) for e in self.epochs]
        out.update(state=self.state.value, top1=self.top1, top5=self.top5, val_loss=self.val_loss)
        return json_ready(out)




def repeat_seed(seed: int, candidate: int, repeat: int) -> int:
    """The seed of one repeat (initialisation, batch order, augmentation, dropout): repeat 0
    uses `seed` itself (as a single run always has); repeat r >= 1 a seed derived from
    (seed, candidate, r), so a re-run reproduces each repeat. `candidate` tells apart the
    networks of one search."""
    if repeat == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{candidate}:{repeat}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % 2**31


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices): call before building the model."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class RMSpropTF(torch.optim.Optimizer):
    """RMSprop as TensorFlow (and the EfficientNet paper) has it: the mean square starts at 1,
    eps sits inside the square root, and the learning rate is applied inside the momentum.

        ms  = alpha * ms + (1 - alpha) * g^2
        buf = momentum * buf + lr * g / sqrt(ms + eps)
        p  -= buf

    Weight decay is added to the gradient (L2), as in the official code.
    """

    def __init__(self, params, lr: float = 0.002, alpha: float = 0.9, eps: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        if lr <= 0 or not 0 <= alpha < 1 or eps <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError("RMSpropTF needs lr > 0, 0 <= alpha < 1, eps > 0, momentum >= 0, "
                             "weight_decay >= 0")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
            squares = [self.state[p]["square_avg"] for p in params]
            buffers = [self.state[p]["momentum_buffer"] for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            torch._foreach_mul_(squares, group["alpha"])
            torch._foreach_addcmul_(squares, grads, grads, value=1 - group["alpha"])
            denom = torch._foreach_add(squares, group["eps"])
            torch._foreach_sqrt_(denom)
            if group["momentum"] > 0:
                torch._foreach_mul_(buffers, group["momentum"])
                torch._foreach_addcdiv_(buffers, grads, denom, value=group["lr"])
                torch._foreach_sub_(params, buffers)
            else:
                torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])
        return loss


def make_optimizer(model: nn.Module, config: TrainConfig, capturable_on: torch.device | None = None) -> torch.optim.Optimizer:
    """The configured optimizer; weight decay on conv/linear weights only (not BN, biases).
    With `capturable_on` (AdamW only; SGD and RMSpropTF ignore it), its updates can be
    captured in a CUDA graph there: its state and learning rate live on that device
    (`set_learning_rate` fills the rate)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    lr = config.learning_rate
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, foreach=True)
    if config.optimizer == "rmsprop":
        return RMSpropTF(groups, lr=lr, alpha=0.9, eps=1e-3, momentum=0.9)
    if capturable_on is not None:
        return torch.optim.AdamW(groups, lr=torch.tensor(lr, device=capturable_on), foreach=True, capturable=True)
    return torch.optim.AdamW(groups, lr=lr, foreach=True)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's learning rate to `lr`, times the group's own `lr_scale` where it has one
    (per-group rates of an experiment: benchmarks/proxy_probe.py --lr-by-width): a number is
    replaced, a device tensor (a capturable optimizer's, read by a CUDA graph) filled in place."""
    for group in optimizer.param_groups:
        rate = lr * group.get("lr_scale", 1.0)
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(rate)
        else:
            group["lr"] = rate


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warmup from 0 over `warmup` steps, then cosine from 1 to 0 at `total`."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Evaluation(NamedTuple):
    """One pass over the val split: top-1, top-5 (None with 5 classes or fewer), mean cross-entropy,
    and whether each image (in split order) was right at top-1."""

    top1: float
    top5: float | None
    loss: float
    correct: np.ndarray


@torch.inference_mode()
def evaluate(model: nn.Module, dataset: Dataset, resolution: int, device: torch.device | str,
             batch_size: int = 128, channels_last: bool = True) -> Evaluation:
    """Evaluate `model` on the whole val split (see `Evaluation`); `device` as torch takes it
    ("cpu", "cuda:0" or a torch.device), where `model` already is."""
    device = torch.device(device)
    model.eval()
    k = 5 if dataset.num_classes > 5 else None  # with 5 classes or fewer every image is in its top 5
    loss_sum = torch.zeros((), device=device)  # float32: MPS has no float64
    hit1 = torch.zeros((), device=device, dtype=torch.int64)
    hit5 = torch.zeros((), device=device, dtype=torch.int64)
    n = 0
    correct: list[torch.Tensor] = []
    autocast = _autocast(device)
    for x, y in eval_batches(dataset.val, batch_size=batch_size, resolution=resolution,
                             device=device, channels_last=channels_last):
        with autocast:
            logits = model(x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        if k is not None:
            top = logits.topk(k, dim=1).indices
            hit5 += (top == y[:, None]).any(dim=1).sum()
            right = top[:, 0] == y
        else:
            right = logits.argmax(dim=1) == y
        hit1 += right.sum()
        correct.append(right)
        n += y.numel()
    if n == 0:
        return Evaluation(math.nan, (math.nan if k else None), math.nan, np.zeros(0, dtype=bool))
    right = torch.cat(correct).cpu().numpy()
    return Evaluation(hit1.item() / n, (hit5.item() / n) if k else None, loss_sum.item() / n, right)


def _autocast(device: torch.device, cache: bool = True):
    # bf16 autocast only on CUDA: on CPUs without AMX it is slower than fp32. A step captured
    # in a CUDA graph must not keep autocast's cache of cast weights (torch's graph notes).
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)
    return nullcontext()


def check_trainable(dataset: Dataset, resolution: int, config: TrainConfig) -> None:
    """UsageError for a configuration, resolution or training split no training can take:
    what `train` checks first, for a caller that sets up a display before training."""
    config.validate()
    check_int("resolution", resolution, MIN_TRAIN_RESOLUTION, MAX_RESOLUTION)
    if len(dataset.train) < MIN_TRAIN_IMAGES:  # a batch of one gives BatchNorm no statistics where maps are 1x1
        raise UsageError(f"data set {dataset.source} has {len(dataset.train)} training image(s); "
                         f"training needs at least {MIN_TRAIN_IMAGES} (BatchNorm learns from a batch's statistics)")


def _check_logits(logits: object, batch: int, dataset: Dataset) -> None:
    """UsageError unless the first batch's output is one logit per class per image: a model
    without a spec (any nn.Module, a factory's) is checked only here, where cross-entropy
    would fail deep inside torch ('Target 5 is out of bounds')."""
    shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else None
    if shape is None or len(shape) != 2 or shape[0] != batch or shape[1] < dataset.num_classes:
        got = f"shape {shape}" if shape is not None else f"an object of type {type(logits).__name__}"
        raise UsageError(f"the model returns {got} for a batch of {batch}; training on {dataset.source} needs "
                         f"({batch}, {dataset.num_classes}) logits: build it with num_classes={dataset.num_classes}")
    if not logits.is_floating_point():
        raise UsageError(f"the model returns {logits.dtype} logits; training needs floating-point ones")
    if not logits.requires_grad:  # torch would fail at backward(): 'element 0 of tensors does not require grad'
        raise UsageError("the model's logits depend on no trainable weight (it has no parameters, or its forward "
                         "detaches them or runs under torch.no_grad()): there is nothing to train")


# train()'s progress callbacks: on_step(step, total_steps, loss, images_per_s), on_epoch(metrics)
StepCallback = Callable[[int, int, float, float], None]
EpochCallback = Callable[[EpochMetrics], bool]


def shape_lazy_parameters(model: nn.Module, resolution: int) -> None:
    """Give a lazy module's parameters (a factory's `nn.LazyLinear` head) their shapes, as the
    first forward pass would: two zero images at `resolution` (a batch statistic needs two) in
    eval mode, where the model is.
    The size check, the memory layout and the optimizer need them. A model with none is left
    alone; running statistics are not touched (eval mode)."""
    if not any(nn.parameter.is_lazy(p) for p in model.parameters()):
        return
    training = model.training
    device = next((t.device for t in [*model.parameters(), *model.buffers()] if not nn.parameter.is_lazy(t)), None)
    with torch.no_grad():
        model.eval()(torch.zeros(2, 3, resolution, resolution, device=device))
    model.train(training)


def train(
    model: nn.Module,
    dataset: Dataset,
    resolution: int,
    config: TrainConfig,
    runtime: Runtime = Runtime(),
    *,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train `model` in place on `dataset` at `resolution` px and evaluate after every epoch.

    On CUDA, with AdamW and one of scaler's networks, the step is replayed as one CUDA graph
    after its first few (scaler.graphed_step; SCALER_CUDA_GRAPHS=0 trains eagerly throughout,
    to the same result).
    `on_step(step, total_steps, loss, images_per_s)` is called every step on the CPU and every
    CUDA_SYNC_EVERY steps on CUDA (and at each epoch's end); `on_epoch(metrics)` returning True
    stops the run (state PRUNED). A non-finite loss ends it with state DIVERGED (no
    exception); crossing `max_seconds` with state TIMEOUT, after evaluating the partial
    epoch. `runtime` says where it runs (device, threads); it never changes the result's meaning.
    """
    check_trainable(dataset, resolution, config)
    shape_lazy_parameters(model, resolution)
    spec = getattr(model, "spec", None)
    model_classes = getattr(spec, "num_classes", None)
    if model_classes is not None and model_classes < dataset.num_classes:
        raise UsageError(f"the model has {model_classes} classes but data set "
                         f"{dataset.source} has {dataset.num_classes}; build it with "
                         f"num_classes={dataset.num_classes}")
    runtime.validate()
    device = select_device(runtime.device)
    check_training_fits(model, min(config.batch_size, len(dataset.train)), resolution, device)
    previous_threads = torch.get_num_threads()
    if runtime.threads is not None:
        torch.set_num_threads(runtime.threads)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    if config.bn_momentum is not None:
        for m in norms:
            m.momentum = config.bn_momentum
    # Denormal floats make CPU kernels up to 10x slower once weights or gradients get tiny
    # (seen here: 66 vs 680 img/s, identical results); flushing them is harmless for training.
    # Left on: there is no way to read the previous setting back.
    torch.set_flush_denormal(True)
    try:
        model.to(device=device)  # first, so that CUDA is initialised in a fresh worker process
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # The images move to the device once per run, not once per epoch and evaluation.
        try:
            dataset = replace(dataset, train=dataset.train.to(device), val=dataset.val.to(device))
        except torch.OutOfMemoryError:
            size = (dataset.train.images.nbytes + dataset.val.images.nbytes) / 2**30
            raise RunError(f"out of memory on {device} holding the data set's images "
                           f"({size:.1f} GiB); use fewer or smaller images") from None
        with torch.random.fork_rng(devices=fork_devices), \
                conv_backend(model, policy_for(device, resolution)) as layout:
            torch.manual_seed(config.seed)  # dropout / stochastic depth
            return _train(model, dataset, resolution, config, device, layout, on_step, on_epoch)
    except torch.OutOfMemoryError:
        raise RunError(f"out of memory on {device} training at {resolution} px with batch "
                       f"{config.batch_size}; lower the batch size or resolution") from None
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        if runtime.threads is not None:
            torch.set_num_threads(previous_threads)


def train_repeats(
    build: Callable[[], nn.Module],
    dataset: Dataset,
    resolution: int,
    config: TrainConfig,
    runtime: Runtime = Runtime(),
    *,
    repeats: int = 1,
    watch: Callable[[int], tuple[StepCallback | None, EpochCallback | None]] | None = None,
) -> list[tuple[int, TrainResult]]:
    """(seed, result) of `repeats` trainings of a fresh network from `build`, each under its own
    seed (initialisation, batch order, augmentation, dropout): repeat r uses
    `repeat_seed(config.seed, 0, r)`, so repeat 0 is the single run `config` describes and a
    re-run reproduces every repeat. `watch(seed)` gives the `on_step` / `on_epoch` callbacks
    of one training (a progress bar)."""
    check_int("repeats", repeats, 1)
    check_trainable(dataset, resolution, config)  # before the first watch()
    runs = []
    for repeat in range(repeats):
        seed = repeat_seed(config.seed, 0, repeat)
        seed_everything(seed)
        model = build()
        on_step, on_epoch = watch(seed) if watch is not None else (None, None)
        runs.append((seed, train(model, dataset, resolution, replace(config, seed=seed), runtime, on_step=on_step, on_epoch=on_epoch)))
    return runs


def _train(model, dataset, resolution, config, device, layout, on_step, on_epoch) -> TrainResult:
    start = time.perf_counter()
    channels_last = layout == torch.channels_last
    graphed = can_replay(model, device, config.optimizer)  # after train() set the BatchNorm momenta
    # Capturable on CUDA whether or not the step is replayed: a result must not depend on
    # SCALER_CUDA_GRAPHS, and the capturable AdamW's float32 arithmetic on the device differs
    # from the plain one's (README, "On a GPU").
    optimizer = make_optimizer(model, config, device if device.type == "cuda" else None)
    per_epoch = config.steps_per_epoch(len(dataset.train))
    n_epochs = config.planned_epochs(len(dataset.train))
    total = config.steps if config.steps is not None else n_epochs * per_epoch
    # warmup_epochs of an epoch, or of the whole run where it is shorter than an epoch (--steps):
    # 0.3 of an epoch of 1.28M images is 12,000 steps, and a shorter run was all warmup, ending
    # at the peak rate without a decay
    warmup = min(total - 1, round(config.warmup_epochs * min(per_epoch, total)))
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    generator = torch.Generator().manual_seed(config.seed)  # batch order and augmentation
    autocast = _autocast(device, cache=not graphed)
    on_cuda = device.type != "cpu"

    def forward_to_update(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast:
            logits = model(x)
        if step == 0:  # the loop's step, read when this runs (eagerly: a capture comes later)
            _check_logits(logits, len(x), dataset)
        loss = criterion(logits.float(), y)
        loss.backward()
        if config.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        # Detached: the loop keeps a step's loss until the next, and a loss still holding its
        # autograd graph would keep that graph's gradient nodes alive into the capture (torch
        # warns of their streams not matching, which may cost a synchronisation).
        return loss.detach()

    run_step = TrainingStep(forward_to_update, lambda: optimizer.zero_grad(set_to_none=True), graphed)
    report_every = CUDA_SYNC_EVERY if on_cuda else 1

    epochs: list[EpochMetrics] = []
    state, reason, step, val_correct = State.COMPLETE, "", 0, ""
    train_time, train_images = 0.0, 0
    for epoch in range(1, n_epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)  # float32: MPS has no float64
        seen_steps, seen_images, checked_steps = 0, 0, 0
        bad = None
        for x, y in train_batches(dataset.train, batch_size=config.batch_size,
                                  resolution=resolution, generator=generator, device=device,
                                  channels_last=channels_last):
            if step >= total:
                break
            set_learning_rate(optimizer, config.learning_rate * lr_factor(step, total, warmup))
            loss = run_step(x, y)
            step += 1
            seen_steps += 1
            seen_images += y.numel()
            loss_sum += loss.detach()
            if seen_steps % report_every == 0 or step == total or seen_steps == per_epoch:
                # On CUDA this is the only sync: check the loss so far, report progress.
                mean = (loss_sum / seen_steps).item() if on_cuda else loss.item()
                if not math.isfinite(mean):
                    bad = (mean, seen_steps if not on_cuda else
                           f"{checked_steps + 1}..{seen_steps}")
                    break
                checked_steps = seen_steps
                if on_step is not None:
                    rate = seen_images / max(1e-9, time.perf_counter() - epoch_start)
                    on_step(step, total, loss.item() if on_cuda else mean, rate)
            if config.max_seconds is not None and step < total and \
                    time.perf_counter() - start > config.max_seconds:
                state, reason = State.TIMEOUT, (f"time limit of {config.max_seconds:g} s reached "
                                             f"at epoch {epoch} step {seen_steps}")
                break
        _sync(device)
        epoch_train = time.perf_counter() - epoch_start
        train_time += epoch_train
        train_images += seen_images
        if bad is None and seen_steps and not math.isfinite((loss_sum / seen_steps).item()):
            bad = (float((loss_sum / seen_steps).item()), f"{checked_steps + 1}..{seen_steps}")
        if bad is not None:
            word = "nan" if math.isnan(bad[0]) else "inf"
            state, reason = State.DIVERGED, f"loss became {word} at epoch {epoch} step {bad[1]}"
            break
        top1, top5, val_loss, correct = evaluate(model, dataset, resolution, device,
                                                 config.eval_batch_size, channels_last)
        val_correct = pack_correct(correct)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=(loss_sum / max(1, seen_steps)).item(),
            top1=top1,
            top5=top5,
            val_loss=val_loss,
            images_per_s=seen_images / max(1e-9, epoch_train),
            seconds=time.perf_counter() - epoch_start,
            peak_memory_mb=_peak_memory_mb(device),
        )
        epochs.append(metrics)
        if math.isfinite(top1) and not math.isfinite(val_loss):  # a finite training loss, broken outputs
            word = "nan" if math.isnan(val_loss) else "inf"
            state, reason = State.DIVERGED, f"validation loss became {word} at epoch {epoch} (the outputs overflowed)"
            break
        if state is State.TIMEOUT:
            break
        if on_epoch is not None and on_epoch(metrics):
            state, reason = State.PRUNED, f"stopped by the caller after epoch {epoch}"
            break
        if step >= total:
            break
        if config.max_seconds is not None and time.perf_counter() - start > config.max_seconds:
            state, reason = State.TIMEOUT, (f"time limit of {config.max_seconds:g} s reached "
                                         f"after epoch {epoch}")
            break
    model.eval()
    if graphed:  # the last gradients live in the graph's memory pool: let it go with the graph
        optimizer.zero_grad(set_to_none=True)
    return TrainResult(
        state=state,
        reason=reason,
        epochs=tuple(epochs),
        device=str(device),
        train_seconds=time.perf_counter() - start,
        images_per_s=train_images / train_time if train_time > 0 else math.nan,
        steps=step,
        lr=config.learning_rate,
        val_correct=val_correct,
        setup_seconds=run_step.setup_seconds,
    )
