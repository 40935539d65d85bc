"""Pictures of a search: accuracy against MACs with the Pareto front, and a top-1 heat map
over (alpha, beta) on the constraint surface; and of a calibration: each setting's top-1
against the reference's. Uses matplotlib's non-interactive backend."""

from __future__ import annotations

import io
import logging
import textwrap
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scaler.candidates import point_name
from scaler.errors import RunError, UsageError
from scaler.files import atomic_write_bytes
from scaler.reports import pareto_front, truth
from scaler.scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA, is_paper_point

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _pyplot() -> ModuleType:
    """matplotlib.pyplot on the non-interactive backend, imported when a picture is wanted:
    imported with this module, it added a third of a second to every command's start-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_plot_path(path: Path) -> None:
    """UsageError unless matplotlib can write a picture in the format `path`'s suffix names,
    into a folder that exists."""
    plt = _pyplot()
    formats = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    formats.pop("pgf", None)  # needs a LaTeX installation, found (or not) only when writing
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise UsageError(
            f"plot {str(path)!r} has no picture format matplotlib writes; end it with one of "
            f"{', '.join('.' + f for f in sorted(formats))}",
            param="plot",
        )
    if not path.parent.is_dir():
        raise UsageError(f"plot {str(path)!r}: folder {str(path.parent)!r} does not exist", param="plot")
    if path.is_dir():
        raise UsageError(f"plot {str(path)!r} is a folder; name a file in it", param="plot")


def save(fig: Figure, path: Path) -> None:
    """Close the figure and write it atomically (see `atomic_write_bytes`); the format follows
    `path`'s suffix. RunError when it cannot be written (a full disk, a format matplotlib
    fails to render), the one wording of every plot's failure."""
    plt = _pyplot()
    picture = io.BytesIO()
    # PostScript has no transparency: .ps and .eps draw the translucent marks opaque, which
    # reads well here, and matplotlib logs a warning about it to stderr that says nothing wrong.
    postscript = logging.getLogger("matplotlib.backends.backend_ps")
    level = postscript.level
    postscript.setLevel(logging.ERROR)
    try:
        fig.savefig(picture, format=path.suffix.lower().lstrip("."), dpi=110)
        atomic_write_bytes(path, picture.getvalue())
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot write plot {path}: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        postscript.setLevel(level)
        plt.close(fig)


# A scored row's colour by its state; red is chance's line and the paper's point, so a row
# still queued, running or interrupted (its top-1 from the epochs it had) is not mistaken for them.
STATE_COLORS = {"complete": "tab:blue", "pruned": "tab:gray", "timeout": "tab:brown", "queued": "tab:olive",
                "running": "tab:cyan", "interrupted": "tab:purple"}


def plot_search(frame: pd.DataFrame, path: Path, title: str = "", classes: int | None = None) -> None:
    """Write a two-panel PNG (or any matplotlib format, by suffix) of a search's results.
    Every scored row is drawn, coloured by state; the best, the candidates tied with it (ringed),
    the Pareto front and the map read complete rows only, as the table's ranking does (an
    unfinished row's top-1 is partial). With `classes`, chance (one in as many) is a line."""
    plt = _pyplot()
    scored = frame[pd.to_numeric(frame["top1"], errors="coerce").notna()].copy()
    complete = scored[scored["state"] == "complete"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))

    for state, group in scored.groupby("state"):
        color = STATE_COLORS.get(state, "tab:pink")
        left.scatter(group["macs"] / 1e6, group["top1"] * 100, s=36, alpha=0.8, color=color, label=state)
        bounds = _bounds(group) if "top1_low" in group else None
        if bounds is not None:
            left.errorbar(group["macs"] / 1e6, group["top1"] * 100, yerr=bounds, fmt="none", ecolor=color, alpha=0.5, capsize=2)
    front = pareto_front(scored).sort_values("macs")
    if len(front):
        left.plot(front["macs"] / 1e6, front["top1"] * 100, "-o", color="tab:orange", lw=1.5, ms=4, label="Pareto front")
    paper = scored[[is_paper_point(a, b, g) for a, b, g in zip(scored["alpha"], scored["beta"], scored["gamma"])]]
    if len(paper):
        left.scatter(paper["macs"] / 1e6, paper["top1"] * 100, marker="*", s=260, color="tab:red", zorder=5,
                     label=f"paper ({PAPER_ALPHA}, {PAPER_BETA}, {PAPER_GAMMA})")  # fmt: skip
    tied = complete[[truth(v) is True for v in complete.get("tied_with_best", pd.Series(None, index=complete.index))]]
    if len(tied) > 1:  # the best is tied with itself: a ring on it alone says nothing
        left.scatter(tied["macs"] / 1e6, tied["top1"] * 100, s=150, facecolors="none", edgecolors="tab:green", linewidths=1.6,
                     zorder=4, label="≈ the best and those tied with it (95%)")  # fmt: skip
    if len(complete):
        best = complete.sort_values(["top1", "macs"], ascending=[False, True]).iloc[0]
        x = best["macs"] / 1e6
        low, high = scored["macs"].min() / 1e6, scored["macs"].max() / 1e6
        right_half = high > low and x > (low + high) / 2  # the label then runs leftwards, inside the axes
        left.annotate(f"best {point_name(best['alpha'], best['beta'], best['gamma'])}", (x, best["top1"] * 100),
                      textcoords="offset points", xytext=(-6, 6) if right_half else (6, 6), ha="right" if right_half else "left")  # fmt: skip
    _chance_line(left, classes)
    left.set_xlabel("MACs of the scaled proxy (M)")
    left.set_ylabel("val top-1 (%), mean with 95% interval")
    left.set_title("accuracy against cost")
    left.grid(alpha=0.3)
    if left.get_legend_handles_labels()[0]:  # nothing scored: no legend (matplotlib warns of an empty one)
        left.legend(fontsize=8)

    if len(complete):
        best_per_cell = complete.groupby(["alpha", "beta"])["top1"].max().unstack("beta")
        image = right.imshow(best_per_cell.values * 100, origin="lower", aspect="auto", cmap="viridis")
        right.set_xticks(range(len(best_per_cell.columns)), [f"{b:g}" for b in best_per_cell.columns])
        right.set_yticks(range(len(best_per_cell.index)), [f"{a:g}" for a in best_per_cell.index])
        for (i, j), value in np.ndenumerate(best_per_cell.values):
            if not np.isnan(value):
                red, green, blue, _ = image.cmap(image.norm(value * 100))  # dark text on viridis' light cells
                light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
                right.text(j, i, f"{value * 100:.1f}", ha="center", va="center", color="black" if light else "white", fontsize=8)
        fig.colorbar(image, ax=right, label="mean val top-1 (%), best gamma per cell")
    else:  # an empty map says why (every candidate failed, timed out or still waits)
        states = ", ".join(f"{n} {state}" for state, n in frame["state"].value_counts().items())
        right.text(0.5, 0.5, f"no complete candidate\n({states})", ha="center", va="center", transform=right.transAxes)
    if scored.empty:
        left.text(0.5, 0.5, "no candidate has a top-1 yet", ha="center", va="center", transform=left.transAxes)
    right.set_xlabel("beta (width)")
    right.set_ylabel("alpha (depth)")
    right.set_title("top-1 over (alpha, beta), complete candidates")
    if title:
        fig.suptitle(textwrap.fill(title, 110))  # a factory base's path as typed can be long
    fig.tight_layout()
    save(fig, path)


def plot_comparison(frame: pd.DataFrame, path: Path, title: str = "", classes: int | None = None) -> None:
    """Top-1 against MACs, one line per strategy from the unscaled base through phi = 1..K,
    with 95% intervals as error bars (the shape of the paper's Figure 8); with `classes`,
    chance as a line."""
    plt = _pyplot()
    scored = frame[pd.to_numeric(frame["top1"], errors="coerce").notna()]
    base = scored[scored["strategy"] == "base"]
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    for strategy in dict.fromkeys(s for s in frame["strategy"] if s != "base"):
        line = pd.concat([base, scored[scored["strategy"] == strategy]]).sort_values("phi")
        if line.empty:
            continue
        top1 = line["top1"].astype(float) * 100
        low = (line["top1"].astype(float) - line["top1_low"].astype(float)).clip(lower=0).fillna(0) * 100
        high = (line["top1_high"].astype(float) - line["top1"].astype(float)).clip(lower=0).fillna(0) * 100
        style = dict(lw=2.2, ms=7) if strategy == "compound" else dict(lw=1.3, ms=5)
        ax.errorbar(line["macs"] / 1e6, top1, yerr=[low, high], fmt="-o", capsize=3, label=strategy, **style)
    # One label per phi, above its group's highest bar: one per point overlapped, the strategies
    # of a phi lying within a few percent of each other's MACs.
    for phi, group in scored[scored["phi"] > 0].groupby("phi"):
        tops = group["top1_high"].astype(float).fillna(group["top1"].astype(float))
        ax.annotate(f"φ={int(phi)}", (group["macs"].mean() / 1e6, tops.max() * 100), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
    _chance_line(ax, classes)
    ax.set_xlabel("MACs (M), measured with fvcore")
    ax.set_ylabel("val top-1 (%), mean with 95% interval")
    ax.set_title(textwrap.fill(title or "scaling strategies at equal nominal FLOPs", 70))  # a long study name was cut off
    ax.margins(y=0.08)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)


MARKERS = "osD^vPX"  # one per setting of a calibration, before they repeat


def _chance_line(ax: Axes, classes: int | None) -> None:
    """A dotted horizontal line at chance (one in `classes`, in percent) where it lies within
    the accuracies drawn, so that a run that learned nothing reads as such; outside them, the
    legend alone says where it is (a line far below accuracies of 86-89% squeezed their 1-2
    point gaps sixteen times). Nothing without `classes`."""
    if not classes:
        return
    chance, (low, high) = 100 / classes, ax.get_ylim()
    label = f"chance (1 of {classes} classes)"
    if low <= chance <= high:
        ax.axhline(chance, color="tab:red", ls=":", lw=1, label=label)
    else:
        ax.plot([], [], color="tab:red", ls=":", lw=1, label=f"{label}: {chance:.3g}%, {'below' if chance < low else 'above'} the axis")


def _bounds(group: pd.DataFrame) -> list[np.ndarray] | None:
    """Error bars (below, above) in percent from a frame's top-1 intervals; None where any is
    missing."""
    top1 = group["top1"].astype(float)
    low, high = group["top1_low"].astype(float), group["top1_high"].astype(float)
    if low.isna().any() or high.isna().any():
        return None
    return [((top1 - low).clip(lower=0) * 100).to_numpy(), ((high - top1).clip(lower=0) * 100).to_numpy()]


def plot_calibration(frame: pd.DataFrame, path: Path, title: str = "", classes: int | None = None) -> None:
    """Each setting's mean top-1 (y) against the reference's (x) per candidate, one colour and
    marker per setting (each a size smaller than the one before, so that settings that agree
    stay visible on top of each other), with the 95% intervals as error bars, the diagonal and,
    with `classes`, chance on both axes."""
    plt = _pyplot()
    frame = frame.assign(top1=pd.to_numeric(frame["top1"], errors="coerce"))
    reference = frame[frame["setting"] == 0].set_index("candidate")
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shown: list[float] = []
    for number, (setting, group) in enumerate(frame[frame["setting"] != 0].groupby("setting", sort=True)):
        group = group[group["top1"].notna()].set_index("candidate")
        both = group.index.intersection(reference.index[reference["top1"].notna()])
        if not len(both):
            continue
        x, y = reference.loc[both], group.loc[both]
        color = colors[number % len(colors)]
        ax.scatter(x["top1"] * 100, y["top1"] * 100, s=max(14, 90 / (number + 1)), color=color, marker=MARKERS[number % len(MARKERS)],
                   label=str(y["label"].iloc[0]), zorder=3 + number)  # fmt: skip
        ax.errorbar(x["top1"] * 100, y["top1"] * 100, xerr=_bounds(x), yerr=_bounds(y), fmt="none", ecolor=color, alpha=0.5, capsize=2)
        shown += [*x["top1"], *y["top1"]]
    if shown:
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        low, high = min(x0, y0, *([100 / classes] if classes else [])), max(x1, y1)
        ax.plot([low, high], [low, high], "--", color="tab:gray", lw=1, label="y = x (same accuracy)")
        if classes:  # on both axes: the reference's chance and the setting's
            ax.axvline(100 / classes, color="tab:red", ls=":", lw=1)
            _chance_line(ax, classes)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.legend(fontsize=8)
    ax.set_xlabel("reference val top-1 (%), mean with 95% interval")
    ax.set_ylabel("setting's val top-1 (%)")
    ax.set_title("each setting against the reference, per candidate" + (f"\n{textwrap.fill(title, 70)}" if title else ""), fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, Path(path))
