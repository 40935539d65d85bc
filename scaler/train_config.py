"""How a proxy network is trained, as data: `TrainConfig` (optimizer, schedule, length,
seed) and the limits it is checked against. Kept apart from the training loop
(`scaler.training`), which needs torch, so that the command line can read the defaults without
importing it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from scaler.errors import UsageError, check_int

OPTIMIZERS = ("sgd", "rmsprop", "adamw")
# Default learning rate per optimizer, for batch 32 on a few-epoch proxy from scratch, measured
# on the synthetic set (tiny B0, 3 epochs, 96-128 px): SGD+Nesterov 0.02 (0.05 was worse, 0.1
# never left chance; it is also the linear-scaling rule's 0.1 * 32/256 ~ 0.0125-0.025);
# RMSpropTF 0.002 (the paper's 0.256 at batch 4096 scaled to 32; 0.01 did not learn);
# AdamW 0.004 (format-3 synthetic set, B0 at width 0.5, 64 px, 3 epochs: top-1 0.22-0.24
# against SGD's 0.16, and SGD at 0.1 stayed at chance; scaled networks at SGD 0.02 stayed at
# chance, at AdamW 0.004 each of depth, width and resolution gained 5-15 points).
DEFAULT_LR = {"sgd": 0.02, "rmsprop": 0.002, "adamw": 4e-3}
# The most epochs a training may ask for: a guard against a mistyped number (which would
# otherwise train for years), far above any schedule (EfficientNet's is 350 epochs).
MAX_EPOCHS = 10_000
# The same guard for --steps: 350 epochs of ImageNet at batch 32 are 14 million steps.
MAX_STEPS = 10**9
MAX_SEED = 2**63 - 1  # seeds are stored and handed on as signed 64-bit integers
MAX_REPEATS = 1000  # trainings of one network with independent seeds (`--repeats`)


def check_repeats(repeats: object) -> None:
    """UsageError unless `repeats` is an integer in 1..MAX_REPEATS."""
    check_int("repeats", repeats, 1, MAX_REPEATS)


@dataclass(frozen=True)
class TrainConfig:
    """How to train. `lr=None` takes the optimizer's default (DEFAULT_LR)."""

    # 5 epochs of AdamW: the default proxy (benchmarks/proxy_probe.py measures what a setting
    # can tell; 3 epochs of SGD left most networks near chance).
    epochs: int = 5
    steps: int | None = None  # total optimizer steps; overrides epochs
    max_seconds: float | None = None  # stop after the step that crosses it: TIMEOUT
    batch_size: int = 32
    lr: float | None = None
    optimizer: str = "adamw"  # sgd (Nesterov, momentum 0.9) | rmsprop (TF-style) | adamw
    # 1e-5 is the paper's; a few epochs are too short for decay to matter much, and it is
    # applied to conv/linear weights only (not BN or biases), as in the official code.
    weight_decay: float = 1e-5
    label_smoothing: float = 0.1
    # Linear warmup over the first 0.3 epoch (from 0; 0.3 of the run where --steps are fewer
    # than an epoch), then cosine to 0, per optimizer step: a short warmup keeps the first
    # steps on fresh BN statistics from blowing up.
    warmup_epochs: float = 0.3
    # BatchNorm momentum during the run (PyTorch convention), restored afterwards; None keeps
    # the model's. The official 0.01 suits 350 epochs: over a few hundred proxy steps the
    # running statistics would still be mostly their initial values, and every evaluation
    # (which uses them) would be noise.
    bn_momentum: float | None = 0.1
    seed: int = 0
    eval_batch_size: int = 128
    # Largest global L2 norm of the gradient before each step; None: no clipping.
    clip_grad_norm: float | None = None

    def steps_per_epoch(self, train_images: int) -> int:
        """Optimizer steps in one epoch of `train_images` (the last partial batch is dropped)."""
        return train_images // self.batch_size if train_images >= self.batch_size else 1

    def batch_note(self, train_images: int) -> str | None:
        """Where the batch is larger than the training set: the words for it (every epoch is
        then one step on every image, whatever --batch-size says). None otherwise."""
        if self.batch_size <= train_images:
            return None
        return (f"--batch-size {self.batch_size} is more than the {train_images} training images: "
                f"each epoch is one step on a batch of {train_images}")

    def planned_epochs(self, train_images: int) -> int:
        """How many epochs (the last one possibly partial) a run on `train_images` takes."""
        if self.steps is None:
            return self.epochs
        return math.ceil(self.steps / self.steps_per_epoch(train_images))

    @property
    def learning_rate(self) -> float:
        """The learning rate in force: `lr`, or the optimizer's default."""
        return DEFAULT_LR.get(self.optimizer, 0.02) if self.lr is None else self.lr

    def canonical(self) -> TrainConfig:
        """The same training with `lr` left unset where it equals the optimizer's default, so
        `--lr 0.004` with AdamW names the study that leaving it out does."""
        return replace(self, lr=None) if self.lr == DEFAULT_LR.get(self.optimizer) else self

    def identity(self) -> dict:
        """As plain data for a study's fingerprint. `clip_grad_norm` came after the rest: while
        it is None it is left out, so a study begun before it keeps its fingerprint."""
        data = asdict(self)
        if self.clip_grad_norm is None:
            del data["clip_grad_norm"]
        return data

    @classmethod
    def from_identity(cls, data: dict) -> TrainConfig:
        """The inverse of `identity` (an identity without `clip_grad_norm` never clipped)."""
        return cls(**{"clip_grad_norm": None, **data})

    def validate(self) -> None:
        """UsageError (one line) for any value out of range."""
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        if self.steps is not None:
            check_int("steps", self.steps, 1, MAX_STEPS)
        if self.max_seconds is not None and not (_number(self.max_seconds)
                                                 and 0 < self.max_seconds < math.inf):
            # inf would cap nothing yet name a study of its own, and JSON has no infinity
            raise UsageError(f"max_seconds = {self.max_seconds!r} is not allowed; it must be a finite number > 0 "
                             "(leave it out for no cap)", param="max_seconds")
        check_int("batch_size", self.batch_size, 2)  # BatchNorm learns from a batch's statistics
        check_int("eval_batch_size", self.eval_batch_size, 1)
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"optimizer = {self.optimizer!r} is not allowed; choose one of "
                             f"{', '.join(OPTIMIZERS)}", param="optimizer")
        if self.lr is not None and not (_number(self.lr) and 0 < self.lr < math.inf):
            raise UsageError(f"lr = {self.lr!r} is not allowed; it must be > 0", param="lr")
        if not (_number(self.weight_decay) and 0 <= self.weight_decay < math.inf):
            raise UsageError(f"weight_decay = {self.weight_decay!r} is not allowed; "
                             "it must be >= 0", param="weight_decay")
        if not (_number(self.label_smoothing) and 0 <= self.label_smoothing < 1):
            raise UsageError(f"label_smoothing = {self.label_smoothing!r} is not allowed; "
                             "it must be in [0, 1)", param="label_smoothing")
        if not (_number(self.warmup_epochs) and 0 <= self.warmup_epochs < math.inf):
            raise UsageError(f"warmup_epochs = {self.warmup_epochs!r} is not allowed; "
                             "it must be >= 0", param="warmup_epochs")
        if self.bn_momentum is not None and not (_number(self.bn_momentum)
                                                 and 0 < self.bn_momentum <= 1):
            raise UsageError(f"bn_momentum = {self.bn_momentum!r} is not allowed; it must be "
                             "in (0, 1]", param="bn_momentum")
        if self.clip_grad_norm is not None and not (_number(self.clip_grad_norm)
                                                    and 0 < self.clip_grad_norm < math.inf):
            raise UsageError(f"clip_grad_norm = {self.clip_grad_norm!r} is not allowed; it must be a finite "
                             "number > 0 (--clip-grad-norm 0 turns clipping off)", param="clip_grad_norm")
        check_int("seed", self.seed, 0, MAX_SEED)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not (
        isinstance(value, float) and math.isnan(value))
