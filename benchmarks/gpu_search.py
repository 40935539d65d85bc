"""Where a search's time goes on an accelerator, in five figures (the first four with their goals).

    PYTHONPATH=. python benchmarks/gpu_search.py --device cuda [--timm-path DIR] [--root /tmp/gpu]

1. First use per candidate: every candidate of the default search (`scaler search --phi 1`)
   trains two epochs of the default data in this one process, one after the other, as one
   worker trains its items; first use = epoch 1 seconds - epoch 2 seconds (kernel selection
   and compilation for new shapes). Goal on one H200: <= 2 s.
2. The warm training step at 224 px, batch 128, channels_last, bf16 autocast on cuda, plain
   SGD: our B0 against timm's efficientnet_b0 with the same stochastic depth (drop-path 0.2)
   and dropout (0.2), best of alternating rounds. Goal: >= 1.0x. timm is optional
   (`--timm-path`, see timm_support.py); without it this line says so.
3. `train` of B0 at 224 px, batch 128, two epochs of synthetic images: each epoch's training
   rate against the pure step rate of figure 2. Goals: epoch 2 >= 0.95x the pure step, epoch 1
   within 1.5x of epoch 2's time.
4. The default search, `scaler search --phi 1 --device DEVICE` in a child process: its wall
   time and the estimate it printed before training, against the time that followed it
   (search_run.py). Goals: <= 60 s on one H200, estimate within +-25%.
5. Where first use goes: the base network at resolutions no other figure uses (so every
   shape is new) trained for two short epochs under each of bf16 or fp32 (cuDNN's TF32
   convolutions allowed, PyTorch's default), with cuDNN or without it (PyTorch's own
   kernels), and each one's first use and warm epoch, after a throwaway network has paid the
   process's start-up. A backend
   whose first use stays small at a warm epoch near the default's is the fix to make;
   cuDNN 9.10+ finalising one execution plan per new depthwise shape is the suspect
   (NVIDIA/cudnn-frontend#1066). It runs before figure 4, so that the slow search comes last.

`--quick` shrinks every part (two candidates, tiny images, a micro search) so that the script
can be smoke-tested on a CPU; its figures then mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_run import run_search  # noqa: E402
from timm_support import import_timm, step_rate  # noqa: E402

import scaler.training  # noqa: E402
from scaler import build_model  # noqa: E402
from scaler.candidates import ProxyBase  # noqa: E402
from scaler.data import load_dataset  # noqa: E402
from scaler.experiments.proxy import DataOptions  # noqa: E402
from scaler.experiments.search import CompoundSearch, SearchConfig  # noqa: E402
from scaler.runtime import Runtime, select_device  # noqa: E402
from scaler.training import TrainConfig, seed_everything, train  # noqa: E402

MICRO_SEARCH = ["--alpha-range", "1:1.2:0.2", "--beta-range", "1:1.1:0.1", "--gamma-range", "1:1.2:0.1",
                "--tolerance", "0.5", "--base-resolution", "32", "--base-width", "0.25",
                "--train-images", "64", "--val-images", "32", "--batch-size", "16", "--epochs", "1"]


def first_use(device: str, quick: bool) -> None:
    """Figure 1: each default candidate's epoch 1 - epoch 2, in one process."""
    config = SearchConfig()
    if quick:
        config = replace(config, data=DataOptions("synthetic", 64, 32), train=replace(config.train, batch_size=16))
    search = CompoundSearch.plan(config)
    runtime = Runtime(device=device)
    data = search.prepare(runtime)
    train_config = replace(config.train, epochs=2)
    print(f"1. first use per candidate ({len(data.train)} + {len(data.val)} images, batch "
          f"{train_config.batch_size}, goal <= 2 s):", flush=True)
    overheads = []
    for candidate in search.candidates[: 2 if quick else None]:
        result = train(search.model(candidate, config.train.seed), data, candidate.resolution, train_config, runtime)
        one, two = (e.seconds for e in result.epochs)
        overheads.append(one - two)
        print(f"   #{candidate.index} r={candidate.resolution} w={candidate.width_mult:.3g} "
              f"d={candidate.depth_mult:.3g}: epoch 1 {one:.2f} s, epoch 2 {two:.2f} s, "
              f"first use {one - two:.2f} s", flush=True)
    print(f"   first use: max {max(overheads):.2f} s, mean {sum(overheads) / len(overheads):.2f} s")


def step_against_timm(device: str, timm_path: str | None, quick: bool) -> float:
    """Figure 2: the pure step of our B0 and timm's, alternating rounds; returns ours."""
    resolution, batch, steps = (32, 8, 2) if quick else (224, 128, 20)
    bf16 = select_device(device).type == "cuda"
    timm, note = import_timm(timm_path)
    ours = build_model("b0", num_classes=1000)
    theirs = timm.create_model("efficientnet_b0", drop_path_rate=0.2, drop_rate=0.2) if timm else None
    mine, ref = [], []
    for _ in range(1 if quick else 3):
        mine.append(step_rate(ours, resolution, batch, steps, 3, device, bf16))
        if theirs is not None:
            ref.append(step_rate(theirs, resolution, batch, steps, 3, device, bf16))
    how = f"{resolution} px, batch {batch}, channels_last{', bf16' if bf16 else ''}, drop-path 0.2"
    if ref:
        print(f"2. training step ({how}): ours {max(mine):.0f} img/s, timm {max(ref):.0f} img/s: "
              f"{max(mine) / max(ref):.2f}x (goal >= 1.0x)", flush=True)
    else:
        print(f"2. training step ({how}): ours {max(mine):.0f} img/s; timm not measured ({note})", flush=True)
    return max(mine)


def train_against_step(device: str, pure: float, quick: bool) -> None:
    """Figure 3: `train`'s epochs against the pure step rate."""
    resolution, batch, images = (32, 8, 32) if quick else (224, 128, 5120)
    data = load_dataset("synthetic", storage_resolution=resolution, train_images=images,
                        val_images=batch, native_resolution=64 if quick else 256)
    seed_everything(0)
    result = train(build_model("b0", num_classes=data.num_classes), data, resolution,
                   TrainConfig(epochs=2, batch_size=batch, optimizer="sgd"), Runtime(device=device))
    one, two = result.epochs
    print(f"3. train ({images} images, {resolution} px, batch {batch}): epoch 1 {one.images_per_s:.0f} img/s, "
          f"epoch 2 {two.images_per_s:.0f} img/s = {two.images_per_s / pure:.2f}x the pure step "
          f"(goal >= 0.95x); epoch 1 took {one.seconds / two.seconds:.2f}x epoch 2 (goal <= 1.5x)", flush=True)


def default_search(device: str, root: str, quick: bool) -> None:
    """Figure 4: the default search's wall time and its printed estimate."""
    command = [sys.executable, "-m", "scaler", "search", "--phi", "1", "--device", device,
               "--quiet", "--root", root, *(MICRO_SEARCH if quick else [])]
    # This checkout's scaler, installed or not.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    lines: list[str] = []
    run, code = run_search(command, env={"PYTHONPATH": path}, echo=lines.append)
    if code:
        sys.exit(f"gpu_search: the search failed (exit {code}): {' | '.join(lines)[-500:]}")
    print(f"4. default search on {device}: wall {run.wall:.1f} s (goal <= 60 s on one H200); {run.report()}",
          flush=True)


@contextlib.contextmanager
def backend(bf16: bool, cudnn: bool):
    """Train in the library's precision (bf16 autocast on CUDA, fp32 elsewhere) or fp32, with cuDNN
    on or off; restored afterwards. An experiment's switch, not a library option."""
    autocast = scaler.training._autocast
    if not bf16:
        scaler.training._autocast = lambda device: contextlib.nullcontext()
    try:
        with torch.backends.cudnn.flags(enabled=cudnn, benchmark=False, deterministic=False):
            yield
    finally:
        scaler.training._autocast = autocast


def first_use_by_backend(device: str, quick: bool) -> None:
    """Figure 5: first use and warm epoch of the base under each precision and cuDNN setting,
    two networks each, at resolutions nothing else in this process has used."""
    resolutions = iter((20, 24, 28, 36, 40, 44, 52, 56) if quick else (60, 68, 72, 80, 84, 92, 96, 100))
    images, batch = (32, 16) if quick else (640, 32)
    data = load_dataset("synthetic", storage_resolution=56 if quick else 108, train_images=images,
                        val_images=batch, native_resolution=64 if quick else 256)
    base, runtime = ProxyBase(), Runtime(device=device)
    config = TrainConfig(epochs=2, batch_size=batch)
    # A throwaway network first (16 / 108 px, which no figure uses), so that no cell pays the
    # process's one-time start-up.
    train(base.build(), data, 16 if quick else 108, replace(config, epochs=1), runtime)
    print(f"5. first use by backend ({images} images, batch {batch}, two networks each):", flush=True)
    for bf16, cudnn in ((True, True), (True, False), (False, True), (False, False)):
        cells = []
        for _ in range(2):
            resolution = next(resolutions)
            seed_everything(0)
            with backend(bf16, cudnn):
                result = train(base.build(), data, resolution, config, runtime)
            one, two = (e.seconds for e in result.epochs)
            cells.append(f"r={resolution} first use {one - two:.2f} s, warm epoch {two:.2f} s")
        precision = "library's (bf16 on cuda)" if bf16 else "fp32 (TF32 convolutions)"
        print(f"   {precision:>24}, cuDNN {'on ' if cudnn else 'off'}: {'; '.join(cells)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--timm-path", help="folder to add to sys.path for timm")
    parser.add_argument("--root", help="--root of the search (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--skip", default="", help="figures to skip, e.g. 1,4 (a call of the device tool has 10 minutes)")
    args = parser.parse_args()
    skip = {int(s) for s in args.skip.split(",") if s}
    device = str(select_device(args.device))
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else device
    print(f"device {device} ({name}), torch {torch.__version__}", flush=True)
    if 1 not in skip:
        first_use(device, args.quick)
    pure = step_against_timm(device, args.timm_path, args.quick) if {2, 3} - skip else 0.0
    if 3 not in skip:
        train_against_step(device, pure, args.quick)
    if 5 not in skip:
        first_use_by_backend(device, args.quick)
    if 4 not in skip:
        with tempfile.TemporaryDirectory() as scratch:
            default_search(device, args.root or scratch, args.quick)


if __name__ == "__main__":
    main()
