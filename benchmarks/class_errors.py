"""Where a study's trainings on the built-in synthetic data err: per class group (discs for
resolution, dots for depth, glyphs for width) and per visibility of the class object, from the
per-image results every run stores. Nothing is trained: the validation images are rendered
again (their labels and the visibility drawn for each) from the study's data seed.

    .venv/bin/python benchmarks/class_errors.py FOLDER [FOLDER ...] [--curves]

FOLDER is a search's or a calibration's study folder (its journal file). Printed per trained
configuration (a calibration's setting and candidate): mean top-1, each group's top-1 per
repeat, and each group's top-1 by visibility bin over its repeats; `--curves` adds each run's
validation top-1 after every epoch. Given several folders (searches that differ only in
`--seed`), it then prints, per group, each configuration's top-1 in every folder, its mean
over them, and the group's per-run noise: the standard deviation of the residuals once each
folder's and each configuration's mean is removed (as `seed_agreement.py` does for top-1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaler.data.synthetic import LAYOUTS, SYNTHETIC_CLASSES, TEXTURES, SyntheticRenderer  # noqa: E402
from scaler.experiments.calibration import SUMMARY_NAME as CALIBRATION_SUMMARY  # noqa: E402
from scaler.experiments.search import SUMMARY_NAME as SEARCH_SUMMARY  # noqa: E402
from scaler.statistics import per_run_noise, unpack_correct  # noqa: E402
from scaler.states import State  # noqa: E402
from scaler.study.storage import open_storage  # noqa: E402
from scaler.study.trials import trial_state  # noqa: E402

_FIRST_GLYPH = len(TEXTURES) + len(LAYOUTS)
GROUPS = {"discs": range(len(TEXTURES)), "dots": range(len(TEXTURES), _FIRST_GLYPH), "glyphs": range(_FIRST_GLYPH, len(SYNTHETIC_CLASSES))}
BINS = ((0, 28), (28, 45), (45, 63), (63, 101))  # visibility, percent
# The summaries of the study kinds it reads, by name: a study folder holds other JSON files too
# (data-files.json, from a search on folder data).
SUMMARIES = (SEARCH_SUMMARY, CALIBRATION_SUMMARY)


def recording_renderer(seed: int, stream: int, native: int) -> tuple[SyntheticRenderer, list[int]]:
    """A renderer of (seed, stream) that notes, in the returned list, the visibility it draws for
    each image (in 256ths); it renders the same images as an unwatched one."""
    renderer = SyntheticRenderer(seed, stream, native)
    low, high = SyntheticRenderer.VISIBILITY
    drawn: list[int] = []

    class Recording:  # the renderer's generator, noting each visibility draw
        def __init__(self, rng: np.random.Generator) -> None:
            self.rng = rng

        def integers(self, *args, **kwargs):
            value = self.rng.integers(*args, **kwargs)
            if args[:2] == (low, high + 1):
                drawn.append(int(value))
            return value

        def __getattr__(self, name: str):
            return getattr(self.rng, name)

    renderer.rng = Recording(renderer.rng)
    return renderer, drawn


def validation_draws(seed: int, count: int, native: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and visibility (percent) of the first `count` validation images of `seed`, as
    `SyntheticSource` renders them (stream 2)."""
    renderer, drawn = recording_renderer(seed, 2, native)
    _, labels = renderer.render(count)
    if len(drawn) != count:
        raise SystemExit(f"recorded {len(drawn)} visibility draws for {count} images: the renderer changed")
    return labels, np.array(drawn) * 100 / 256


def report(folder: Path, curves: bool) -> dict[str, dict[str, float]]:
    """Prints one study's errors (see the module's docstring); returns each configuration's
    top-1 per group, over its repeats."""
    path = next((folder / name for name in SUMMARIES if (folder / name).is_file()), None)
    if path is None:
        raise SystemExit(f"{folder} holds no study summary ({' or '.join(SUMMARIES)}): give a search's or a calibration's study folder")
    summary = json.loads(path.read_text())
    config = summary["config"].get("search", summary["config"])
    if config["data"]["source"] != "synthetic":
        raise SystemExit("only studies on the built-in synthetic data can be rendered again")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=summary["name"], storage=open_storage(str(folder / "study.journal")))
    runs: dict[tuple, list] = {}
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        if trial_state(trial) is State.COMPLETE and "val_correct" in trial.user_attrs:  # not timed out
            key = tuple(trial.params[k] for k in ("setting", "candidate") if k in trial.params)
            runs.setdefault(key, []).append(trial)
    if not runs:
        raise SystemExit("no finished run with per-image results")
    count = int(next(iter(runs.values()))[0].user_attrs["val_images"])
    labels, visibility = validation_draws(config["train"]["seed"], count, config["data"]["native_resolution"])
    masks = {group: np.isin(labels, list(classes)) for group, classes in GROUPS.items()}
    print(f"{count} validation images; visibility bins {', '.join(f'{a}-{b}%: {int(((visibility >= a) & (visibility < b)).sum())}' for a, b in BINS)}")
    table = pd.read_csv(folder / "results.csv")
    names = {row.candidate: f"({row.alpha:g}, {row.beta:g}, {row.gamma:g})" for row in table.itertuples()}
    labels_of = dict(zip(table["setting"], table["label"])) if "setting" in table else {}
    groups: dict[str, dict[str, float]] = {}
    for key, trials in sorted(runs.items()):
        name = f"{labels_of[key[0]]} {names[key[1]]}" if len(key) == 2 else names[key[0]]
        trials.sort(key=lambda t: t.params.get("repeat", 0))
        correct = [unpack_correct(t.user_attrs["val_correct"], count) for t in trials]
        mean = np.mean(correct, axis=0)
        per_repeat = "  ".join("/".join(f"{c[m].mean() * 100:3.0f}" for m in masks.values()) for c in correct)
        by_bin = "  ".join(
            f"{group} " + "/".join(f"{mean[m & (visibility >= a) & (visibility < b)].mean() * 100:3.0f}" for a, b in BINS)
            for group, m in masks.items()
        )  # fmt: skip
        print(f"{name}: top-1 {mean.mean() * 100:5.1f} | {'/'.join(masks)} per repeat: {per_repeat} | by visibility: {by_bin}")
        groups[name] = {group: float(mean[m].mean() * 100) for group, m in masks.items()}
        if curves:
            for t in trials:
                values = [t.intermediate_values[e] * 100 for e in sorted(t.intermediate_values)]
                print(f"    repeat {t.params.get('repeat', 0)}: " + " ".join(f"{v:.0f}" for v in values))
    return groups


def across(results: list[dict[str, dict[str, float]]]) -> None:
    """Each group's top-1 per configuration in every study, its mean, and the group's noise."""
    names = [n for n in results[0] if all(n in r for r in results)]
    for group in GROUPS:
        values = np.array([[r[n][group] for r in results] for n in names])  # configuration x study
        noise, dof = per_run_noise(values)
        print(f"\n{group}: per-run noise {noise:.1f} points ({dof} degrees of freedom)")
        for name, row in sorted(zip(names, values), key=lambda item: -item[1].mean()):
            print(f"  {name:>16}  {' / '.join(f'{v:3.0f}' for v in row)}  mean {row.mean():5.1f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", type=Path, nargs="+", metavar="FOLDER")
    p.add_argument("--curves", action="store_true", help="each run's validation top-1 after every epoch")
    args = p.parse_args()
    results = []
    for folder in args.folders:
        if len(args.folders) > 1:
            print(f"== {folder}")
        results.append(report(folder, args.curves))
    if len(results) > 1:
        across(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
