"""How much a proxy setting can tell: trains the unscaled base, the three single-dimension
candidates and a few compound ones, each with two or more seeds, exactly as a search trains a
candidate (data split with the seed, initial weights from the seed, `train` with the search's
TrainConfig), and prints top-1 per network, its gain over the base against the noise, and
the cost of one training in images of timm's efficientnet_b0 step (see timm_support.py).

    PYTHONPATH=. nice -n 5 .venv/bin/python benchmarks/proxy_probe.py --timm-path /tmp/timm_pkgs \
        [--epochs 3 --train-images 2000 --val-images 500 --lr 0.02 --base-resolution 64 \
         --base-width 0.5 --seeds 0,1 --nets "1,1,1;2,1,1;1,1.4,1;1,1,1.4;1.2,1.1,1.15"]

Each seed plays one search's repeat 0 (`scaler search --seed S`): the data of seed S, the
weights of seed S. The noise figures: `val` is the 95% Wilson half-width of one run's top-1 on
the validation images; `seeds` is the standard deviation over seeds of (net - base), the
spread a gain must clear to rank the same way in two searches.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_variants import VARIANTS, apply  # noqa: E402
from timm_support import import_timm, reference_rate  # noqa: E402

from scaler.candidates import CandidateSpace, ProxyBase  # noqa: E402
from scaler.data import eval_batches, train_batches  # noqa: E402
from scaler.data.options import DataOptions  # noqa: E402
from scaler.errors import UsageError  # noqa: E402
from scaler.runtime import Runtime  # noqa: E402
from scaler.scaling import compound_scale  # noqa: E402
from scaler.statistics import per_run_noise, proportion_interval, unpack_correct  # noqa: E402
import scaler.training as training_module  # noqa: E402
from scaler.training import evaluate, seed_everything, train  # noqa: E402
from scaler.train_config import TrainConfig  # noqa: E402


def adjust(model: torch.nn.Module, no_drop: bool, readout_divisor: float) -> None:
    """Experimental changes to a built EfficientNet (not library behaviour): no dropout or
    stochastic depth; the classifier's output divided by `readout_divisor` (muP's readout
    rule when it is the network's width multiplier over the base's)."""
    for m in model.modules():
        if no_drop and isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if no_drop and hasattr(m, "drop_path"):
            m.drop_path = 0.0
    if readout_divisor != 1.0:
        classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        classifier.register_forward_hook(lambda module, inputs, output: output / readout_divisor)


def lr_by_width() -> None:
    """Experimental (not library behaviour): from now on, an optimizer made for a network with
    a `width_ratio` attribute trains its width-scaled weights (1x1 convolutions and linear
    layers, whose fan-in grows with width) at the learning rate / that ratio, the rest (stem,
    depthwise kernels, norms, biases) as configured: muP's rule for Adam, which keeps a wider
    layer's effective step the base's. Done by wrapping the library's optimizer factory in
    this process."""
    make = training_module.make_optimizer
    if getattr(make, "lr_by_width", False):  # installed already: scaling twice would divide twice
        return

    def scaled(model: torch.nn.Module, config: TrainConfig, capturable_on: torch.device | None = None) -> torch.optim.Optimizer:
        optimizer = make(model, config, capturable_on)
        ratio = getattr(model, "width_ratio", 1.0)
        if ratio == 1.0:
            return optimizer
        wide = {id(m.weight) for m in model.modules()
                if isinstance(m, torch.nn.Linear)
                or (isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1)}
        groups, optimizer.param_groups = optimizer.param_groups, []  # no step taken yet: no state
        for group in groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            for chosen, scale in ((True, 1 / ratio), (False, 1.0)):
                params = [q for q in group["params"] if (id(q) in wide) == chosen]
                if params:  # the schedule sets lr x lr_scale every step (training.set_learning_rate)
                    optimizer.add_param_group({**settings, "params": params, "lr": group["lr"] * scale, "lr_scale": scale})
        return optimizer

    scaled.lr_by_width = True
    training_module.make_optimizer = scaled


def adam_beta2(beta2: float) -> None:
    """Experimental (not library behaviour): from now on, the library's AdamW keeps its second
    moment with `beta2` instead of 0.999, a shorter memory, so that one large gradient early in
    a few-hundred-step run stops shrinking every later step sooner. Done by wrapping the
    library's optimizer factory in this process."""
    make = training_module.make_optimizer

    def shorter_memory(model: torch.nn.Module, config: TrainConfig, capturable_on: torch.device | None = None) -> torch.optim.Optimizer:
        optimizer = make(model, config, capturable_on)
        for group in optimizer.param_groups:
            if "betas" in group:
                group["betas"] = (group["betas"][0], beta2)
        return optimizer

    training_module.make_optimizer = shorter_memory


def recalibrated_top1(model: torch.nn.Module, data, resolution: int, augment: bool, seed: int) -> float:
    """Experimental (not library behaviour): top-1 once every BatchNorm's statistics are
    recomputed over the training split ("precise BN"), in place of the running averages the
    last ~10 steps left: the average of batches of 128, each weighted alike; with `augment`,
    one epoch of the training augmentation (its last partial batch dropped), else every
    training image as evaluation transforms it (which also removes the train/test difference
    in object size that random crops make)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    model.eval()
    for m in norms:
        m.train()
    device = torch.device("cpu")
    batches = (train_batches(data.train, batch_size=128, resolution=resolution, device=device,
                             generator=torch.Generator().manual_seed(seed)) if augment else
               eval_batches(data.train, batch_size=128, resolution=resolution, device=device))
    with torch.no_grad():
        for x, _ in batches:
            model(x)
    model.eval()
    return evaluate(model, data, resolution, device).top1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig()
    b = ProxyBase()
    p.add_argument("--nets", default="1,1,1;2,1,1;1,1.4,1;1,1,1.4;1.4,1.2,1;1.2,1.1,1.15",
                   help="alpha,beta,gamma per network, ';' between them; gains and the premise are measured against the first")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--optimizer", default=d.optimizer)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--no-timm", action="store_true", help="skip the reference rate")
    p.add_argument("--no-drop", action="store_true", help="no dropout / stochastic depth")
    p.add_argument("--no-zero-init", action="store_true",
                   help="the standard start instead of residual branches at zero (ProxyBase.zero_init)")
    p.add_argument("--readout-by-width", action="store_true",
                   help="divide the classifier's output by the width multiplier (muP's readout rule)")
    p.add_argument("--lr-by-width", action="store_true",
                   help="1x1 convolutions and linear layers at the learning rate / the width multiplier (muP's Adam rule)")
    p.add_argument("--base-depth", type=float, default=1.0,
                   help="depth multiplier of the base itself (the nets' depth multiplies it)")
    p.add_argument("--crop-min", type=float, default=None,
                   help="smallest crop area of the training augmentation (library: 0.35)")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--adam-beta2", type=float, default=None,
                   help="AdamW's beta2 (default: torch's 0.999)")
    p.add_argument("--clip-grad-norm", type=float, default=d.clip_grad_norm or 0.0, help="0: no clipping")
    p.add_argument("--train-images", type=int, default=None)
    p.add_argument("--val-images", type=int, default=None)
    p.add_argument("--base-resolution", type=int, default=b.resolution)
    p.add_argument("--base-width", type=float, default=b.width)
    p.add_argument("--base", default=b.variant)
    p.add_argument("--storage", type=int, default=None, help="storage resolution")
    p.add_argument("--variant", action="append", default=[],
                   help=f"a data design tried and not kept, NAME[=ARGS] (repeatable): {', '.join(VARIANTS)}; "
                        "see data_variants.py")
    p.add_argument("--recalibrate-bn", action="store_true",
                   help="also report top-1 with BatchNorm statistics recomputed on the training split (see recalibrated_top1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timm-path", default="/tmp/timm_pkgs")
    args = p.parse_args(argv)
    try:
        nets = [tuple(float(v) for v in n.split(",")) for n in args.nets.split(";")]
    except ValueError:
        nets = []
    if not nets or any(len(n) != 3 for n in nets):
        p.error(f"--nets {args.nets}: give each network as alpha,beta,gamma, networks separated by ';'")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds {args.seeds}: give integer seeds separated by ',', e.g. 0,1")
    for option, value, ok, allowed in (
        ("--threads", args.threads, args.threads >= 1, ">= 1"),
        ("--storage", args.storage, args.storage is None or args.storage >= 1, ">= 1"),
        ("--base-depth", args.base_depth, args.base_depth > 0, "> 0"),
        ("--crop-min", args.crop_min, args.crop_min is None or 0 < args.crop_min <= 1, "in (0, 1]"),
        ("--adam-beta2", args.adam_beta2, args.adam_beta2 is None or 0 <= args.adam_beta2 < 1, "in [0, 1)"),
    ):
        if not ok:
            p.error(f"{option} {value:g}: it must be {allowed}")
    variants: list[str] = []
    for spec in args.variant:
        try:
            variants.append(apply(spec))
        except ValueError as error:
            p.error(f"--variant {spec}: {error}")
    data_options = DataOptions("synthetic", args.train_images, args.val_images)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         optimizer=args.optimizer, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, warmup_epochs=args.warmup_epochs,
                         clip_grad_norm=args.clip_grad_norm or None)
    try:  # the library's own checks, as a usage error before anything is trained
        data_options.validate()
        classes = data_options.classes()
        base = ProxyBase(args.base, args.base_resolution, args.base_width, classes,
                         zero_init=not args.no_zero_init)
        base.validate()
        scales = [compound_scale(a, bb, g, 1.0, base.resolution) for a, bb, g in nets]
        for seed in seeds:
            replace(config, seed=seed).validate()
    except UsageError as error:
        p.error(str(error))

    torch.set_flush_denormal(True)
    if args.lr_by_width:  # an experiment's switch: every train() in this process
        lr_by_width()
    if args.adam_beta2 is not None:  # an experiment's switch: every train() in this process
        adam_beta2(args.adam_beta2)
    if args.crop_min is not None:  # an experiment's switch: every train() in this process
        train_batches.__kwdefaults__["scale"] = (args.crop_min, 1.0)
    timm, note = (None, "skipped") if args.no_timm else import_timm(args.timm_path)
    rates = [reference_rate(timm, args.threads)] if timm else []
    # A search stores its data at its largest candidate's resolution, which every candidate
    # (and so the base here) then reads: the default grid's, unless --storage says otherwise.
    storage = args.storage or max(
        compound_scale(a, bb, g, 1.0, base.resolution).resolution
        for a, bb, g in CandidateSpace().coefficients())
    storage = max(storage, *(s.resolution for s in scales))
    runtime = Runtime(device="cpu", threads=args.threads)
    top1: dict[int, list[float]] = {i: [] for i in range(len(nets))}
    recalibrated = {kind: {i: [] for i in range(len(nets))} for kind in ("eval", "augmented")}
    seconds: dict[int, list[float]] = {i: [] for i in range(len(nets))}
    n_val = 0
    for seed in seeds:
        start = time.perf_counter()
        data = data_options.load(storage, seed, runtime)
        n_val = len(data.val)
        print(f"seed {seed}: data {len(data.train)}+{n_val} at {storage} px in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        for i, scale in enumerate(scales):
            seed_everything(seed)
            model = base.build(scale.width, scale.depth * args.base_depth)
            adjust(model, args.no_drop, scale.width if args.readout_by_width else 1.0)
            model.width_ratio = scale.width  # read by lr_by_width's optimizer, if installed
            result = train(model, data, scale.resolution, replace(config, seed=seed), runtime)
            top1[i].append(result.top1)
            right = unpack_correct(result.val_correct, len(data.val))
            labels = data.val.labels.numpy()
            per_class = " ".join(f"{right[labels == c].mean():.2f}" for c in range(data.num_classes))
            seconds[i].append(result.train_seconds)
            print(f"  {nets[i]} r={scale.resolution} top1 {result.top1:.3f} "
                  f"({'/'.join(f'{e.top1:.2f}' for e in result.epochs)}) "
                  f"{result.train_seconds:.1f} s {result.state.value}; per class {per_class}", flush=True)
            if args.recalibrate_bn:
                for kind in recalibrated:
                    recalibrated[kind][i].append(recalibrated_top1(model, data, scale.resolution, kind == "augmented", seed))
                print("    BN statistics recomputed: " + ", ".join(
                    f"{kind} {values[i][-1]:.3f}" for kind, values in recalibrated.items()), flush=True)
    if timm:
        rates.append(reference_rate(timm, args.threads))
    rate = statistics.mean(rates) if rates else math.nan

    print(f"\nsetting: base {args.base} r{args.base_resolution} w{args.base_width:g}, "
          f"epochs {args.epochs}, batch {args.batch_size}, {args.optimizer} lr {config.learning_rate:g}, "
          f"train {args.train_images or 'default'}, val {n_val}, seeds {seeds}"
          f"{', no drop' if args.no_drop else ''}{', standard start' if args.no_zero_init else ''}"
          f"{f', base depth {args.base_depth:g}' if args.base_depth != 1 else ''}"
          f"{', readout / width' if args.readout_by_width else ''}"
          f"{', width-scaled lr / width' if args.lr_by_width else ''}"
          f"{f', crop area {args.crop_min:g}-1' if args.crop_min is not None else ''}"
          f"{f', gradient norm clipped to {args.clip_grad_norm:g}' if args.clip_grad_norm else ''}"
          f"{f', AdamW beta2 {args.adam_beta2:g}' if args.adam_beta2 is not None else ''}"
          f"{''.join(f'; {v}' for v in variants)}")
    if rates:
        print(f"timm reference {rate:.1f} img/s ({', '.join(f'{r:.1f}' for r in rates)}; {note or 'ok'})")
    else:  # no cost in timm images without the reference: the s x rate column stays empty
        print(f"timm reference not measured ({note or 'no rate'}): costs in timm images are not shown")
    base_mean = statistics.mean(top1[0])
    half = lambda p: (lambda lo_hi: (lo_hi[1] - lo_hi[0]) / 2)(
        proportion_interval(round(p * n_val), n_val))
    if nets[0] != (1.0, 1.0, 1.0):  # gains are the first network's; say so where it is not the base
        print(f"gain and premise against the first network, {','.join(f'{v:g}' for v in nets[0])} (not the base 1,1,1)")
    print(f"{'net':>18} {'top1 per seed':>22} {'mean':>6} {'gain':>6} {'val±':>5} "
          f"{'seeds sd':>8} {'premise':>7} {'s x rate':>9}")
    compound_costs = []
    for i, net in enumerate(nets):
        m = statistics.mean(top1[i])
        diffs = [t - b0 for t, b0 in zip(top1[i], top1[0])]
        gain = m - base_mean
        sd = statistics.stdev(diffs) if len(diffs) > 1 else math.nan
        # premise: gain larger than the candidate's own 95% interval half-width (one run: Wilson)
        premise = "" if i == 0 else ("yes" if gain > half(m) and min(diffs) > 0 else "no")
        cost = statistics.mean(seconds[i]) * rate
        if i and rates:
            compound_costs.append(cost)
        shown_cost = f"{cost:9.0f}" if rates else f"{'':>9}"
        print(f"{str(net):>18} {' '.join(f'{t:.3f}' for t in top1[i]):>22} {m:6.3f} "
              f"{gain:+6.3f} {half(m):5.3f} {'' if math.isnan(sd) else f'{sd:.3f}':>8} {premise:>7} {shown_cost}")
    if args.recalibrate_bn and len(seeds) > 1:
        def noise(table: dict[int, list[float]]) -> float:  # networks x seeds, in points
            return 100 * per_run_noise([table[i] for i in sorted(table)])[0]

        print(f"per-run noise (residuals after seed and network means): running statistics {noise(top1):.2f} points"
              + "".join(f", {kind} {noise(values):.2f}" for kind, values in recalibrated.items()))
        for kind, values in recalibrated.items():
            print(f"  BN statistics recomputed ({kind}): " + "; ".join(
                f"{nets[i]} {' '.join(f'{t:.3f}' for t in values[i])}" for i in range(len(nets))))
    best = max(statistics.mean(v) for v in top1.values())
    if not compound_costs:
        print(f"best/chance {best * classes:.2f}")
        return
    print(f"best/chance {best * classes:.2f}; one scaled training = {statistics.mean(compound_costs):.0f} "
          f"timm images; 30,000 buys {30000 / statistics.mean(compound_costs):.1f} trainings "
          "(before data and estimate overhead)")


if __name__ == "__main__":
    main()
