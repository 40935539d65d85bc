"""Where a search's time goes on an accelerator, in nine figures (four with goals of their own).

    PYTHONPATH=. python benchmarks/gpu_search.py --device cuda [--timm-path DIR] [--workers 1,4]
    PYTHONPATH=. python benchmarks/gpu_search.py --device cuda --only 8   # the GPU-sized proxy alone

They run in this order, so that one call of a 10-minute device slot gets the answers first.
Figures 1, 3, 4 and 6 run under SCALER_CONV's convolution policy, or the library's default
(`auto`, see scaler.conv_backend); figure 2 runs our B0 under it and under channels-last;
figures 5 and 7 set the policies they compare.

5. Where first use goes: the base network at resolutions no other figure uses (so every shape
   is new) trained for two short epochs under each concrete policy (bf16 autocast), after a
   throwaway network has paid the process's start-up; each one's first use (epoch 1 - epoch 2
   seconds) and warm epoch, and which policy costs least at this size.
4. The default search, `scaler search --phi 1 --device DEVICE --workers N` in a child process,
   once per `--workers` value (each in its own folder): its wall time and the estimate it
   printed before training, against the time that followed it (search_run.py). A failed
   search is reported, the other figures still run, and the script then exits 1. With
   `--root`, each folder must be new (a finished search would resume, not train). Goals:
   <= 60 s on one H200, estimate within +-25%.
1. First use per candidate: every candidate of the default search trains two epochs of the
   default data in this one process, one after the other, as one worker trains its items.
   Goal on one H200: <= 2 s.
6. How launch-bound the default proxy's step is: eager, eager with the fused AdamW, and the
   whole step as one CUDA graph (CUDA only).
3. `train` of B0 at 224 px, batch 128, two epochs of synthetic images with plain SGD (figure
   2's optimizer; SGD trains eagerly, so neither figure replays a step; `--train-optimizer
   adamw` times `scaler train`'s default instead, replayed on CUDA, still against figure 2's
   SGD step), run before figure 2 would warm its shapes (its line prints after figure 2's):
   each epoch's training rate
   against the pure step rate of figure 2, and (on CUDA) how often epoch 2 made the host wait
   for the device (torch.cuda.set_sync_debug_mode counts each synchronising operation).
   Goals: epoch 2 >= 0.95x the pure step (SGD's only: an AdamW step does more than the SGD
   step it is set against), epoch 1 within 1.5x of epoch 2's time.
2. The warm training step at 224 px, batch 128, bf16 autocast on cuda, plain SGD: our B0 under
   the policy and under channels-last against timm's efficientnet_b0 (channels-last) with the
   same stochastic depth (drop-path 0.2) and dropout (0.2), best of alternating rounds. Goal:
   >= 1.0x. timm is optional (`--timm-path`, see timm_support.py); without it this line says so.
7. Which layout pays at which size: B0's step at 64 to 224 px under contiguous, channels-last
   and native-depthwise, first use and warm rate (what `auto`'s threshold rests on).
9. Does replaying the step change the result? Two default candidates (the first and the
   deepest) trained as the search trains them, with the same seed, replayed as a CUDA graph
   (the library's default on CUDA) and eagerly (SCALER_CUDA_GRAPHS=0; the same capturable
   AdamW): top-1, final training loss and seconds of each (CUDA only).
8. A GPU-sized proxy: the default search's candidates and recipe on B0 at full width, 128 px and
   20,000 + 2,000 synthetic images (GPU_PROXY), one worker (`--proxy-workers`; with the step
   replayed, one worker ran the default search fastest): its wall time, its estimate, and its
   best and worst top-1. It takes minutes (about 6 min on one H200 replayed, 2026-12-04),
   so it runs only when `--only` names it (`--only 8`: it alone, in a call of its own), and
   `--proxy-limit SECONDS` stops it in time to report how far it got.

`--quick` shrinks every part (two candidates, tiny images, a micro search) so that the script
can be smoke-tested on a CPU; its figures then mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from arguments import positive_ints  # noqa: E402
from search_run import run_search  # noqa: E402
from timm_support import import_timm, step_rate  # noqa: E402

from scaler import build_model  # noqa: E402
from scaler.candidates import ProxyBase  # noqa: E402
from scaler.conv_backend import DEFAULT_POLICY, ENV, POLICIES, conv_backend, resolve  # noqa: E402
from scaler.data import load_dataset  # noqa: E402
from scaler.data.options import DataOptions  # noqa: E402
from scaler.experiments.search import CompoundSearch, SearchConfig  # noqa: E402
from scaler.graphed_step import GRAPHS_ENV  # noqa: E402
from scaler.runtime import Runtime, select_device  # noqa: E402
from scaler.training import CUDA_SYNC_EVERY, EpochMetrics, seed_everything, train  # noqa: E402
from scaler.train_config import TrainConfig  # noqa: E402

# The GPU-sized proxy of figure 8 (and of the README): the default's recipe on a larger base
# and 11x the images.
GPU_PROXY = ["--base-width", "1.0", "--base-resolution", "128", "--train-images", "20000",
             "--val-images", "2000"]
MICRO_SEARCH = ["--alpha-range", "1:1.2:0.2", "--beta-range", "1:1.1:0.1", "--gamma-range", "1:1.2:0.1",
                "--tolerance", "0.5", "--base-resolution", "32", "--base-width", "0.25",
                "--train-images", "64", "--val-images", "32", "--batch-size", "16", "--epochs", "1"]


def first_use(device: str, quick: bool) -> None:
    """Figure 1: each default candidate's epoch 1 - epoch 2, in one process."""
    config = SearchConfig()
    if quick:  # the default's candidates on a quarter-width base at 32 px: seconds on a CPU
        config = replace(config, base=replace(config.base, width=0.25, resolution=32), data=DataOptions("synthetic", 64, 32),
                         train=replace(config.train, batch_size=16))
    search = CompoundSearch.plan(config)
    runtime = Runtime(device=device)
    data = search.prepare(runtime)
    train_config = replace(config.train, epochs=2)
    print(f"1. first use per candidate ({len(data.train)} + {len(data.val)} images, batch "
          f"{train_config.batch_size}, {os.environ.get(ENV, DEFAULT_POLICY)} convolutions, goal <= 2 s):", flush=True)
    overheads = []
    for candidate in search.candidates[: 2 if quick else None]:
        result = train(search.model(candidate, config.train.seed), data, candidate.resolution, train_config, runtime)
        one, two = (e.seconds for e in result.epochs)
        overheads.append(one - two)
        print(f"   #{candidate.index} r={candidate.resolution} w={candidate.width_mult:.3g} "
              f"d={candidate.depth_mult:.3g}: epoch 1 {one:.2f} s, epoch 2 {two:.2f} s, "
              f"first use {one - two:+.2f} s", flush=True)
    print(f"   first use: max {max(overheads):+.2f} s, mean {sum(overheads) / len(overheads):+.2f} s "
          "(epoch 1 - epoch 2; below 0: none measurable, epoch 2 ran slower by chance)")


def replayed_against_eager(device: str, quick: bool) -> None:
    """Figure 9: the first and the deepest default candidate, trained as the search trains
    them with the same seed, replayed and eagerly (SCALER_CUDA_GRAPHS=0)."""
    if not device.startswith("cuda"):
        print("9. replayed against eager: CUDA only", flush=True)
        return
    config = SearchConfig()
    search = CompoundSearch.plan(config)
    runtime = Runtime(device=device)
    data = search.prepare(runtime)
    train_config = replace(config.train, epochs=1) if quick else config.train
    deepest = max(search.candidates, key=lambda c: c.depth_mult)
    print(f"9. replayed against eager ({len(data.train)} + {len(data.val)} images, {train_config.epochs} epochs, "
          f"seed {train_config.seed}):", flush=True)
    for candidate in (search.candidates[0], deepest):
        cells = []
        for how, value in (("replayed", "1"), ("eager", "0")):
            with environment(GRAPHS_ENV, value):
                result = train(search.model(candidate, train_config.seed), data, candidate.resolution,
                               train_config, runtime)
            cells.append(f"{how} {100 * result.top1:.1f}% (loss {result.epochs[-1].train_loss:.4f}, "
                         f"{result.train_seconds:.1f} s)")
        print(f"   #{candidate.index} r={candidate.resolution} w={candidate.width_mult:.3g} "
              f"d={candidate.depth_mult:.3g}: {'; '.join(cells)}", flush=True)


def step_against_timm(device: str, timm_path: str | None, quick: bool, policy: str) -> float:
    """Figure 2: the pure step of our B0 (under `policy` and under channels-last) and timm's
    (channels-last), alternating rounds; returns ours under `policy`."""
    resolution, batch, steps = (32, 8, 2) if quick else (224, 128, 20)
    bf16 = select_device(device).type == "cuda"
    timm, note = import_timm(timm_path)
    ours = build_model("b0", num_classes=1000)
    theirs = timm.create_model("efficientnet_b0", drop_path_rate=0.2, drop_rate=0.2) if timm else None
    policies = dict.fromkeys((policy, "channels-last"))
    rates: dict[str, list[float]] = {name: [] for name in [*policies, "timm"]}
    for _ in range(1 if quick else 3):
        for name in policies:
            rates[name].append(step_rate(ours, resolution, batch, steps, 3, device, bf16, name))
        if theirs is not None:
            rates["timm"].append(step_rate(theirs, resolution, batch, steps, 3, device, bf16))
    how = f"{resolution} px, batch {batch}{', bf16' if bf16 else ''}, drop-path 0.2"
    best = {name: max(r) for name, r in rates.items() if r}
    ours_text = ", ".join(f"ours ({name}) {best[name]:.0f} img/s" for name in policies)
    if "timm" in best:
        ratios = ", ".join(f"{best[name] / best['timm']:.2f}x ({name})" for name in policies)
        print(f"2. training step ({how}): {ours_text}, timm (channels-last) {best['timm']:.0f} img/s: "
              f"{ratios} (goal >= 1.0x)", flush=True)
    else:
        print(f"2. training step ({how}): {ours_text}; timm not measured ({note})", flush=True)
    return best[policy]


def train_cold(device: str, quick: bool, optimizer: str = "sgd") -> tuple[str, EpochMetrics, EpochMetrics, str]:
    """Figure 3's run: `train` of B0 for two epochs, before anything else in this process has
    used B0's shapes at this size (so that epoch 1 pays the first use a fresh `scaler train`
    pays); what it did, its two epochs, and on CUDA the host's waits for the device in epoch 2."""
    resolution, batch, images = (32, 8, 32) if quick else (224, 128, 5120)
    data = load_dataset("synthetic", storage_resolution=resolution, train_images=images,
                        val_images=batch, native_resolution=64 if quick else 256)
    seed_everything(0)
    config = TrainConfig(epochs=2, batch_size=batch, optimizer=optimizer)
    cuda = select_device(device).type == "cuda"
    ends: list[int] = []  # synchronising operations seen by the end of each epoch

    def epoch_end(metrics: EpochMetrics) -> bool:
        ends.append(sum("synchroniz" in str(w.message) for w in seen))  # torch's sync-debug warnings
        return False  # never stop the run

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            result = train(build_model("b0", num_classes=data.num_classes), data, resolution, config,
                           Runtime(device=device), on_epoch=epoch_end)
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
    steps = config.steps_per_epoch(images)
    waits = (f"epoch 2 made the host wait for the device {ends[1] - ends[0]} times in {steps} steps "
             f"(training, its loss checks every {CUDA_SYNC_EVERY} steps and evaluation)"
             if cuda else "host waits counted on CUDA only")
    return f"{images} images, {resolution} px, batch {batch}, {optimizer}", *result.epochs, waits


def train_against_step(run: tuple[str, EpochMetrics, EpochMetrics, str], pure: float) -> None:
    """Figure 3: `train`'s epochs against the pure step rate of figure 2."""
    how, one, two, waits = run
    # the 0.95x goal is the SGD step's: an AdamW step does more work than the pure SGD step it is set against
    goal = "goal >= 0.95x" if how.endswith(", sgd") else "no goal: an AdamW step against an SGD one"
    print(f"3. train ({how}): epoch 1 {one.images_per_s:.0f} img/s, "
          f"epoch 2 {two.images_per_s:.0f} img/s = {two.images_per_s / pure:.2f}x the pure SGD step "
          f"({goal}); epoch 1 took {one.seconds / two.seconds:.2f}x epoch 2 (goal <= 1.5x); "
          f"{waits}", flush=True)


def timed_search(figure: str, device: str, root: str, workers: int, options: list[str],
                 goal: str = "", limit: float | None = None) -> bool:
    """`scaler search --phi 1 OPTIONS` in a child process, with `workers` worker processes: its
    wall time and printed estimate, and its best and worst top-1 (figures 4 and 8); False when
    the search failed. Its lines are echoed as they come, with the seconds since its start, so
    that a call cut short still shows how far it got; after `limit` seconds it is stopped with
    a Ctrl-C and reported as far as it got."""
    command = [sys.executable, "-m", "scaler", "search", "--phi", "1", "--device", device,
               "--workers", str(workers), "--quiet", "--root", root, *options]
    # This checkout's scaler, installed or not.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    lines: list[str] = []
    start = time.perf_counter()

    def echo(line: str) -> None:
        lines.append(line)
        print(f"  {time.perf_counter() - start:6.1f} s | {line}", flush=True)

    run, code = run_search(command, env={"PYTHONPATH": path}, echo=echo, limit=limit)
    if code and run.stopped_at is None:  # report and go on: the other figures still answer
        print(f"{figure} on {device}, {workers} worker(s): failed (exit {code}): "
              f"{' | '.join(lines)[-500:]}", flush=True)
        return False
    print(f"{figure} on {device}, {workers} worker{'s' if workers > 1 else ''} "
          f"({os.environ.get(ENV, 'default')} convolutions): wall {run.wall:.1f} s{goal}; "
          f"{run.report()}; {outcome(Path(root))}", flush=True)
    return True


def outcome(root: Path) -> str:
    """The search's candidates by state, and the top-1 range of the complete ones (the others'
    top-1, where they have one, comes from fewer epochs)."""
    tables = sorted(root.glob("*/results.csv"))
    if not tables:
        return "no results.csv written"
    table = pd.read_csv(tables[-1])
    states = ", ".join(f"{n} {state}" for state, n in table["state"].value_counts().items())
    top1 = table.loc[table["state"] == "complete", "top1"].dropna()
    return f"candidates {states}" + (f"; top-1 {top1.max():.1%} best, {top1.min():.1%} worst"
                                     if len(top1) else "")


def default_search(device: str, root: str, quick: bool, workers: int) -> bool:
    """Figure 4: the default search (goal <= 60 s on one H200, estimate within +-25%)."""
    return timed_search("4. default search", device, root, workers, MICRO_SEARCH if quick else [],
                        " (goal <= 60 s on one H200)")


def gpu_proxy_search(device: str, root: str, quick: bool, workers: int, limit: float | None) -> bool:
    """Figure 8: the GPU-sized proxy's search (GPU_PROXY), stopped after `limit` seconds."""
    how = "micro search, --quick" if quick else "B0 width 1.0, 128 px, 20,000 + 2,000 images"
    return timed_search(f"8. GPU-sized proxy search ({how})", device, root, workers,
                        MICRO_SEARCH if quick else GPU_PROXY, limit=limit)


def first_use_by_policy(device: str, quick: bool) -> None:
    """Figure 5: first use and warm epoch of the base under each convolution policy
    (scaler.conv_backend), two networks each (one for channels-last, whose first use is large),
    at resolutions nothing else in this process has used; and the policy with the least first
    use + five warm epochs (a default search's candidate)."""
    resolutions = iter((20, 24, 28, 36, 40, 44, 52, 56) if quick else (60, 68, 72, 80, 84, 92, 96, 100))
    images, batch = (32, 16) if quick else (640, 32)
    data = load_dataset("synthetic", storage_resolution=56 if quick else 108, train_images=images,
                        val_images=batch, native_resolution=64 if quick else 256)
    base, runtime = ProxyBase(), Runtime(device=device)
    config = TrainConfig(epochs=2, batch_size=batch)
    # A throwaway network first (16 / 108 px, which no figure uses), so that no cell pays the
    # process's one-time start-up.
    train(base.build(), data, 16 if quick else 108, replace(config, epochs=1), runtime)
    print(f"5. first use by convolution policy (bf16 autocast, {images} images, batch {batch}, "
          f"two networks each, one for channels-last):", flush=True)
    costs = {}
    for policy in (p for p in POLICIES if p != "auto"):  # auto is a rule over the others
        cells, cost = [], 0.0
        for _ in range(1 if policy == "channels-last" else 2):  # its first use is known to be large
            resolution = next(resolutions)
            seed_everything(0)
            with environment(ENV, policy):
                result = train(base.build(), data, resolution, config, runtime)
            one, two = (e.seconds for e in result.epochs)
            cost = max(cost, one + 4 * two)
            cells.append(f"r={resolution} first use {one - two:+.2f} s, warm epoch {two:.2f} s")
        costs[policy] = cost
        print(f"   {policy:>16}: {'; '.join(cells)}", flush=True)
    print(f"   least first use + 5 warm epochs (the worse of its networks): {min(costs, key=costs.get)}", flush=True)


def launch_bound(device: str, quick: bool) -> None:
    """Figure 6: the default proxy's warm step (base network, 64 px, batch 32, AdamW, bf16) run
    eagerly as the library does, eagerly with the fused AdamW, and captured whole (forward,
    backward and a capturable AdamW) in one CUDA graph replayed per step. The gap between the
    first and the last is the launch and Python overhead that a graphed step would take off."""
    if not device.startswith("cuda"):
        print("6. launch-bound step: CUDA only", flush=True)
        return
    resolution, batch, steps = 64, 32, 10 if quick else 60
    torch.manual_seed(0)
    x = torch.randn(batch, 3, resolution, resolution, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    rates = {}
    for how in ("eager", "eager, fused AdamW", "one CUDA graph"):
        try:
            model = ProxyBase().build().to(device)
            with conv_backend(model, resolve(os.environ.get(ENV, DEFAULT_POLICY), resolution)) as layout:
                inputs = x.contiguous(memory_format=layout)
                fused = how != "eager"
                opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=not fused, fused=fused or None,
                                        capturable=how == "one CUDA graph")

                def step():
                    with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                        loss = F.cross_entropy(model(inputs).float(), y)
                    loss.backward()
                    opt.step()

                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        opt.zero_grad(set_to_none=how != "one CUDA graph")
                        step()
                torch.cuda.current_stream().wait_stream(side)
                if how == "one CUDA graph":
                    graph = torch.cuda.CUDAGraph()
                    opt.zero_grad(set_to_none=True)
                    with torch.cuda.graph(graph):
                        step()
                    run = graph.replay
                else:
                    def run():
                        opt.zero_grad(set_to_none=True)
                        step()
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(steps):
                    run()
                torch.cuda.synchronize()
                rates[how] = batch * steps / (time.perf_counter() - start)
        except Exception as error:  # an experiment: report and go on
            print(f"   {how}: failed ({type(error).__name__}: {str(error)[:200]})", flush=True)
    cells = ", ".join(f"{how} {rate:.0f} img/s ({1000 * batch / rate:.1f} ms/step)" for how, rate in rates.items())
    print(f"6. launch-bound step ({resolution} px, batch {batch}, base network, bf16): {cells}", flush=True)


def policy_by_size(device: str, quick: bool) -> None:
    """Figure 7: which layout pays at which size: B0's training step (plain SGD, bf16) at a
    proxy's size and at full size under the contiguous, channels-last and native-depthwise
    policies: the first three steps' time over three warm steps' (first use) and the warm rate.
    native-depthwise runs 4 px larger: its pointwise convolutions are channels-last's, whose
    shapes at the same size would already be warm."""
    sizes = ((0.5, 32, 8),) if quick else ((0.5, 64, 32), (1.0, 128, 32), (1.0, 128, 128), (1.0, 224, 128))
    bf16 = select_device(device).type == "cuda"
    print("7. layout by size (B0 training step, bf16, plain SGD):", flush=True)
    for width, resolution, batch in sizes:
        cells = []
        for policy, at in (("contiguous", resolution), ("channels-last", resolution),
                           ("native-depthwise", resolution + 4)):
            model = ProxyBase(resolution=at, width=width).build()
            cold = 3 * batch / step_rate(model, at, batch, 3, 0, device, bf16, policy)
            warm = step_rate(model, at, batch, 5 if quick else 20, 2, device, bf16, policy)
            where = f" (at {at} px)" if at != resolution else ""
            cells.append(f"{policy}{where} first use {cold - 3 * batch / warm:.2f} s, warm {warm:.0f} img/s")
        print(f"   width {width:g}, {resolution} px, batch {batch}: {'; '.join(cells)}", flush=True)


@contextlib.contextmanager
def environment(name: str, value: str):
    """The environment variable `name` set to `value` while the block runs (child processes
    inherit it), then as it was: SCALER_CONV's policy, SCALER_CUDA_GRAPHS's switch."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name)
        else:
            os.environ[name] = previous


def figures(parser: argparse.ArgumentParser, option: str, text: str) -> set[int]:
    """The figure numbers a comma-separated option names; a usage error for anything else."""
    try:
        numbers = {int(s) for s in text.split(",") if s}
    except ValueError:
        numbers = {0}
    if not numbers <= set(range(1, 10)):
        parser.error(f"{option} {text}: name figures by their numbers, 1 to 9, e.g. 1,4")
    return numbers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--timm-path", help="folder to add to sys.path for timm")
    parser.add_argument("--root", help="figure 4 keeps its searches in ROOT/workersN and figure 8 in ROOT/gpu-proxy "
                        "(default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--skip", default="", help="figures to skip, e.g. 1,4 (a call of the device tool has 10 minutes)")
    parser.add_argument("--only", default="", help="the figures to run, e.g. 8 (which runs only when named here)")
    parser.add_argument("--workers", type=positive_ints, default="1", help="figure 4's --workers, one search each: e.g. 1,4")
    parser.add_argument("--proxy-workers", type=int, default=1, help="figure 8's --workers")
    parser.add_argument("--train-optimizer", default="sgd", choices=["sgd", "adamw"],
                        help="figure 3's optimizer: sgd (figure 2's) or adamw (scaler train's default, replayed on CUDA)")
    parser.add_argument("--proxy-limit", type=float, help="stop figure 8's search after this many seconds "
                        "(a Ctrl-C) and report how far it got: its estimate and the candidates done")
    args = parser.parse_args(argv)
    skip, only = figures(parser, "--skip", args.skip), figures(parser, "--only", args.only)
    skip |= set(range(1, 10)) - only if only else {8}
    workers_list = args.workers
    if args.proxy_workers < 1:
        parser.error("--proxy-workers must be >= 1")
    if args.proxy_limit is not None and not 0 < args.proxy_limit < math.inf:
        parser.error("--proxy-limit must be a number of seconds > 0")
    if len(set(workers_list)) != len(workers_list):
        parser.error(f"--workers {','.join(map(str, workers_list))}: each value once (each search gets its own folder)")
    names = [f"workers{w}" for w in workers_list] * (4 not in skip) + ["gpu-proxy"] * (8 not in skip)
    for folder in [Path(args.root) / name for name in names] if args.root else ():
        if folder.exists() and any(folder.iterdir()):  # a finished search would resume, not time anything
            parser.error(f"{folder} is not empty: give the searches a fresh --root")
    device = str(select_device(args.device))
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else device
    cudnn = torch.backends.cudnn.version() if device.startswith("cuda") else None
    print(f"device {device} ({name}), torch {torch.__version__}, cuDNN {cudnn}, {os.cpu_count()} CPUs", flush=True)
    if 5 not in skip:
        first_use_by_policy(device, args.quick)
    policy = os.environ.get(ENV, DEFAULT_POLICY)  # what the other figures run under
    failed = 0
    with environment(ENV, policy):
        if 4 not in skip:
            for workers in workers_list:
                with tempfile.TemporaryDirectory() as scratch:  # a study folder per search
                    root = Path(args.root) / f"workers{workers}" if args.root else Path(scratch)
                    failed += not default_search(device, str(root), args.quick, workers)
        if 1 not in skip:
            first_use(device, args.quick)
        if 6 not in skip:
            launch_bound(device, args.quick)
        cold = train_cold(device, args.quick, args.train_optimizer) if 3 not in skip else None  # before figure 2 warms B0
        pure = step_against_timm(device, args.timm_path, args.quick, policy) if {2, 3} - skip else 0.0
        if cold is not None:
            train_against_step(cold, pure)
        if 7 not in skip:
            policy_by_size(device, args.quick)
        if 9 not in skip:
            replayed_against_eager(device, args.quick)
        if 8 not in skip:
            with tempfile.TemporaryDirectory() as scratch:
                root = Path(args.root) / "gpu-proxy" if args.root else Path(scratch)
                failed += not gpu_proxy_search(device, str(root), args.quick, args.proxy_workers,
                                                args.proxy_limit)
    if failed:
        sys.exit(f"gpu_search: {failed} search(es) of figures 4 and 8 failed (above)")


if __name__ == "__main__":
    main()
