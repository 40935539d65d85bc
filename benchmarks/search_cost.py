"""What a default search costs on this machine, in images of timm's efficientnet_b0 step.

Runs `scaler search --phi 1` (the built-in defaults; extra arguments after `--` are passed on,
e.g. `-- --seed 1`) in a child process with 2 threads, this checkout's scaler as `python -m
scaler` unless `--scaler` names another command, times it, and measures timm's
efficientnet_b0 training step (128 px, batch 32, channels_last, 10 classes, plain SGD; see
timm_support.py) in this process just before and just after it, so that both figures see
the same machine. Prints the search's own estimate (the "estimated N s" or "N min" line) against
the time that followed it (see search_run.py), and

    wall x rate = N images (goal <= 30,000)

which normalises the wall time for the machine. With `--wall SECONDS` no search is run: the
wall time of a finished search is given, and only the rate is measured. `--root` must be a new
(or empty) folder: in a used one the search would resume a finished study and time nothing.
One folder per seed also gives `seed_agreement.py` its searches:

    PYTHONPATH=. nice -n 5 .venv/bin/python benchmarks/search_cost.py --timm-path /tmp/timm_pkgs \
        --root /tmp/cost-seed1 -- --seed 1
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_run import run_search  # noqa: E402
from timm_support import REFERENCE, import_timm, reference_rate  # noqa: E402

GOAL = 30_000


def search_command(scaler: str | None, threads: int, root: Path, extra: list[str]) -> tuple[list[str], dict[str, str]]:
    """The search to time and what its environment adds: by default this checkout's scaler
    (`python -m scaler` with the repository first on PYTHONPATH, as gpu_search.py runs it: a
    shared editable venv's console script would run whichever checkout the venv points at);
    with `scaler`, that command as it is."""
    command = [scaler] if scaler else [sys.executable, "-m", "scaler"]
    env = {} if scaler else {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return [*command, "search", "--phi", "1", "--threads", str(threads), "--quiet", "--root", str(root), *extra], env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timm-path", help="folder to add to sys.path for timm")
    parser.add_argument("--root", type=Path, help="--root of the search: a new or empty folder (required unless --wall)")
    parser.add_argument("--wall", type=float, help="wall seconds of a finished search (no run)")
    parser.add_argument("--scaler", help="the scaler command (default: this Python's `-m scaler`, on this checkout)")
    parser.add_argument("extra", nargs="*", help="more `scaler search` arguments (after --)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.wall is not None and not 0 < args.wall < math.inf:
        parser.error("--wall must be a number of seconds > 0")
    if args.wall is None and (args.root is None or (args.root.exists() and any(args.root.iterdir()))):
        parser.error("--root must name a new or empty folder (a used one would resume a finished search, not time one)")
    timm, note = import_timm(args.timm_path)
    if timm is None:
        sys.exit(f"search_cost: {note}; install it aside (see benchmarks/timm_support.py)")
    rates = [reference_rate(timm, args.threads)]
    print(f"{REFERENCE}: {rates[0]:.1f} img/s", flush=True)
    run = None
    if args.wall is None:
        command, env = search_command(args.scaler, args.threads, args.root, args.extra)
        print("running: " + " ".join(command), flush=True)
        run, code = run_search(command, env=env, echo=lambda line: print("  | " + line, flush=True))
        if code:
            sys.exit(f"search_cost: the search failed (exit {code})")
        wall = run.wall
        rates.append(reference_rate(timm, args.threads))
        print(f"{REFERENCE}: {rates[-1]:.1f} img/s (after)", flush=True)
    else:
        wall = args.wall
    rate = sum(rates) / len(rates)
    if run is not None:
        print(run.report())
    product = wall * rate
    # the goal is the default search's; --seed alone keeps it the default (three seeds are measured)
    extra = args.extra
    default = not extra or (len(extra) == 2 and extra[0] == "--seed") or (len(extra) == 1 and extra[0].startswith("--seed="))
    verdict = f"goal <= {GOAL:,}: {'met' if product <= GOAL else 'not met'}" if default else \
        f"the goal <= {GOAL:,} is the default search's; this one has {' '.join(extra)}"
    print(f"wall {wall:.0f} s x rate {rate:.1f} img/s = {product:,.0f} images ({verdict})")


if __name__ == "__main__":
    main()
