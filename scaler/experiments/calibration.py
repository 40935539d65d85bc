"""Calibrating a proxy as an experiment: does the search's cheap ranking predict the ranking
under longer training?

A few candidates spread over the search's candidate set are trained under several settings:
the reference (longer training: more epochs, or more images), the proxy (the search's own
options) and cheaper tries (fewer epochs or images, a smaller base resolution or width). Each
(setting, candidate, repeat) is one work item. The summary gives, per setting, its cost and
the Spearman and Kendall correlations of its candidates' mean top-1 with the reference's
(95% bootstrap intervals over candidates), how many of the pairs of candidates the reference
tells apart it orders as the reference does, and recommends the cheapest setting that keeps
Spearman >= 0.8.

The tries are not part of a calibration's identity: each setting's trainings are the same
whatever else is tried, so a try asked of an existing calibration is added to it (stored with
the study) and only its own trainings run; the reference, the costliest part, is never trained
again for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from torch import nn

from scaler.candidates import Candidate, ProxyBase, build_candidates
from scaler.data import MAX_IMAGES, MIN_TRAIN_IMAGES, SYNTHETIC_TRAIN, Dataset, take_train
from scaler.data.dataset import DataIdentity
from scaler.errors import RunError, UsageError, check_int
from scaler.files import whole_numbers
from scaler.experiments.choices import DEFAULT_FACTOR, DEFAULT_K
from scaler.experiments.proxy import (
    DatasetContext, Timing, check_stored, describe_timings, estimate_seconds, first_use_left, load_checked, time_networks, train_outcome,
)
from scaler.experiments.repeats import ATTR_REPEATS, aggregate, group_by, per_repeat_top1, repeats_in, separated_pairs
from scaler.experiments.search import SEARCH_OPTIONS, SearchConfig, candidate_label
from scaler.runtime import Runtime
from scaler.scaling import MIN_TRAIN_RESOLUTION, validate_multiplier, validate_resolution
from scaler.states import State
from scaler.statistics import LEVEL, agreement_p_value, best_reaches_chance, bootstrap_agreement, split_half_reliability
from scaler.study.experiment import (
    Experiment, Outcome, Record, Reporter, WorkItem, fingerprint, identity_digest, register_experiment,
)
from scaler.study.create import recorded_spelling
from scaler.study.results import read_outputs
from scaler.training import repeat_seed, seed_everything
from scaler.train_config import MAX_EPOCHS, MAX_REPEATS, check_repeats

SUMMARY_NAME = "calibration.json"
MIN_K = 3  # fewer candidates rank nothing a correlation can judge
THRESHOLD = 0.8  # the Spearman a setting must keep with the reference to be recommended,
# and beyond chance: its permutation p-value below 1 - LEVEL (not reachable with 3 candidates)
_ROUNDING = 1e-9  # a Spearman of exactly THRESHOLD (1 - 6 sum d^2 / (n (n^2 - 1))) computes as 0.7999999999999999


def keeps_threshold(spearman: float) -> bool:
    """Whether a Spearman reaches THRESHOLD, a value it takes exactly for some rankings (the
    tables show it as 0.80) counted as reaching it despite the float's last bit."""
    return spearman >= THRESHOLD - _ROUNDING


REFERENCE, PROXY = 0, 1  # setting indices; the tries follow
MAX_SETTINGS = 100  # the reference, the proxy and up to 98 tries in one calibration
ATTR_CALIBRATION = "scaler_calibration"
# The keys of --try and of a setting's overrides: the flag of `scaler search` each one sets.
OVERRIDES = {"epochs": "epochs", "train-images": "train_images", "base-resolution": "base_resolution", "base-width": "base_width"}
RESULT_COLUMNS = [
    "setting", "label", "candidate", "alpha", "beta", "gamma", "resolution", "params", "macs",
    "top1", "top1_low", "top1_high", "top1_std", "repeats", "top5", "val_loss", "epochs",
    "train_seconds", "images_per_s", "state", "reason",
]  # fmt: skip
NUMERIC_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in ("label", "state", "reason"))
COUNT_COLUMNS = ("setting", "candidate", "resolution", "params", "macs", "repeats", "epochs")


@dataclass(frozen=True)
class Setting:
    """How one setting trains the candidates: the proxy's options with some replaced (None
    keeps the proxy's)."""

    label: str
    epochs: int | None = None
    train_images: int | None = None
    base_resolution: int | None = None
    base_width: float | None = None

    def overrides(self) -> dict[str, int | float]:
        """The options this setting replaces, by their `scaler search` flag name (no dashes)."""
        return {flag: getattr(self, key) for flag, key in OVERRIDES.items() if getattr(self, key) is not None}

    def validate(self) -> None:
        """UsageError for a value no training takes, named by its `--try` key (as the label is)."""
        if self.epochs is not None:
            check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        if self.train_images is not None:
            check_int("train-images", self.train_images, MIN_TRAIN_IMAGES, MAX_IMAGES)
        if self.base_resolution is not None:
            validate_resolution(self.base_resolution, what="base-resolution", low=MIN_TRAIN_RESOLUTION)
        if self.base_width is not None:
            validate_multiplier("base-width", self.base_width)

    def base(self, base: ProxyBase) -> ProxyBase:
        """The proxy base this setting scales."""
        return replace(
            base,
            resolution=base.resolution if self.base_resolution is None else self.base_resolution,
            width=base.width if self.base_width is None else self.base_width,
        )


def label_of(overrides: Mapping[str, int | float]) -> str:
    """A try's label: its overrides as `--try` takes them, in a fixed order; each value exact
    (1281167, not 1.28117e+06), so two tries never share a label."""
    return ",".join(f"{flag}={override_text(overrides[flag])}" for flag in OVERRIDES if flag in overrides)


def override_text(value: int | float) -> str:
    """An override's value as a flag takes it, exact: 1281167, not 1.28117e+06; 0.25, not 0.25000."""
    return str(value) if isinstance(value, int) or float(f"{value:g}") != value else f"{value:g}"


def parse_try(text: str) -> Setting:
    """A `--try` value `key=value[,key=value]` (keys: epochs, train-images, base-resolution,
    base-width) as a Setting; UsageError naming the fault otherwise."""
    overrides: dict[str, int | float] = {}
    for part in text.split(","):
        key, sep, value = (p.strip() for p in part.partition("="))
        if not sep or not key:
            raise UsageError(f"{text!r}: {part.strip()!r} is not key=value; e.g. --try epochs=1,train-images=500", param="try")
        if key not in OVERRIDES:
            raise UsageError(f"{text!r}: unknown key {key!r}; use {', '.join(OVERRIDES)}", param="try")
        if key in overrides:
            raise UsageError(f"{text!r}: {key} is given twice", param="try")
        try:
            number: int | float = float(value) if key == "base-width" else int(value)
        except ValueError:
            kind = "a number" if key == "base-width" else "a whole number"
            raise UsageError(f"{text!r}: {key} needs {kind}, not {value!r}", param="try") from None
        overrides[key] = number
    setting = Setting(label_of(overrides), **{OVERRIDES[k]: v for k, v in overrides.items()})
    try:
        setting.validate()
    except UsageError as exc:
        raise UsageError(f"{text!r}: {exc}", param="try") from None
    return setting


def data_images(search: SearchConfig) -> int | None:
    """The training images the search's data options give (None: all the source has; the
    synthetic set renders SYNTHETIC_TRAIN unless told otherwise)."""
    if search.data.train_images is None and search.data.source == "synthetic":
        return SYNTHETIC_TRAIN
    return search.data.train_images


def reference_setting(search: SearchConfig, factor: float | None = None, epochs: int | None = None, train_images: int | None = None) -> Setting:
    """The reference: `epochs`, or the proxy's epochs times `factor` (default DEFAULT_FACTOR),
    on `train_images` (default the proxy's data). Giving both `factor` and `epochs` is refused:
    one of them would be ignored."""
    if factor is not None and epochs is not None:
        raise UsageError(
            f"--reference-factor {factor:g} and --reference-epochs {epochs} both set the reference's epochs; give one"
        )
    if epochs is not None:
        check_int("reference_epochs", epochs, 1, MAX_EPOCHS)
    elif factor is not None and (not math.isfinite(factor) or factor <= 0 or search.train.epochs * factor > MAX_EPOCHS):
        raise UsageError(f"reference factor = {factor:g} is not allowed; it must be > 0 and give at most {MAX_EPOCHS:,} "
                         f"epochs (the proxy trains {search.train.epochs})", param="reference_factor")
    elif factor is None and search.train.epochs * DEFAULT_FACTOR > MAX_EPOCHS:
        raise UsageError(f"the reference trains {DEFAULT_FACTOR:g} x the proxy's {search.train.epochs} epochs by default, more "
                         f"than the {MAX_EPOCHS:,} allowed; give --reference-epochs or a smaller --reference-factor", param="epochs")
    if train_images is not None:
        check_int("reference_train_images", train_images, MIN_TRAIN_IMAGES, MAX_IMAGES)
        own, in_all = data_images(search), search.data.train_images_in_all()
        if train_images == own or (own is None and in_all is not None and train_images >= in_all):
            train_images = None  # the proxy's own images: one configuration, however it is typed (one study)
    factor = DEFAULT_FACTOR if factor is None else factor
    # Half an epoch rounds up (round() would take 2.5 to 2 and 7.5 to 8); the product to 9
    # places first, since 25 x 2.3 is 57.49999999999999 in floating point.
    scaled = max(1, math.floor(round(search.train.epochs * factor, 9) + 0.5))
    return Setting("reference", epochs=scaled if epochs is None else epochs, train_images=train_images)


@dataclass(frozen=True)
class CalibrationConfig:
    """Everything that defines a calibration's results: the search it calibrates, how many
    candidates and the reference; and the cheaper settings to try this time, which a study
    keeps with its attributes instead (see the module's docstring)."""

    search: SearchConfig
    reference: Setting
    k: int = DEFAULT_K
    tries: tuple[Setting, ...] = ()

    def settings(self) -> tuple[Setting, ...]:
        """Setting 0 the reference, 1 the proxy (the search's own options), then the tries."""
        return (self.reference, Setting("proxy"), *self.tries)

    def validate(self) -> None:
        self.search.validate()
        if self.search.train.steps is not None:
            raise UsageError("a calibration compares settings by their epochs; give --epochs instead of --steps", param="steps")
        if self.search.train.max_seconds is not None:
            raise UsageError("a calibration needs every training to run its epochs; drop --max-seconds", param="max_seconds")
        proxy_images, reference_images = self.images(Setting("proxy")), self.images(self.reference)
        more_images = reference_images is None and proxy_images is not None or (
            reference_images is not None and proxy_images is not None and reference_images > proxy_images
        )
        if self.epochs(self.reference) <= self.epochs(Setting("proxy")) and not more_images:
            raise UsageError(
                f"the reference ({self.epochs(self.reference)} epochs on {reference_images or 'all'} images) trains no longer than "
                f"the proxy ({self.epochs(Setting('proxy'))} epochs on {proxy_images or 'all'} images): raise --reference-factor, "
                "--reference-epochs or --reference-train-images"
            )
        if reference_images is not None:  # the proxy and the tries train on the first of the reference's images
            for setting in self.settings()[1:]:
                images = self.images(setting)
                if images is None or images > reference_images:
                    tried = setting in self.tries  # a try's value is at fault too: it leads, as other --try faults do
                    raise UsageError(
                        f"{f'{setting.label!r}: ' if tried else ''}the reference trains on {reference_images} images, fewer than "
                        f"{'this' if tried else f'the {setting.label}'} setting's {images or 'all'}: every setting trains on the first of the reference's "
                        f"images; {'lower train-images or ' if tried else ''}raise --reference-train-images",
                        param="try" if tried else "reference_train_images")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < MIN_K:
            raise UsageError(f"candidates = {self.k!r} is not allowed; a rank correlation needs at least {MIN_K}", param="candidates")
        for setting in self.settings():
            try:
                setting.validate()
            except UsageError as exc:
                raise UsageError(f"setting {setting.label}: {exc}", param="try" if setting in self.tries else None) from None
        if len(self.settings()) > MAX_SETTINGS:
            raise UsageError(f"{len(self.tries)} tries are more than the {MAX_SETTINGS - 2} a calibration takes", param="try")
        labels = [s.label for s in self.settings()]
        doubled = sorted({label for label in labels if labels.count(label) > 1})
        if doubled:
            raise UsageError(f"setting {doubled[0]!r} is given twice", param="try")
        seen = {self.trains_as(s): s.label for s in self.settings()[:2]}
        for setting in self.tries:
            same = seen.setdefault(self.trains_as(setting), setting.label)
            if same != setting.label:
                epochs, images, resolution, width = self.trains_as(setting)
                raise UsageError(f"{setting.label!r} trains as the {same} setting does ({epochs} epoch(s) on {images or 'all'} "
                                 f"images, base {resolution} px at width {width:g}): it would measure nothing new", param="try")

    def trains_as(self, setting: Setting) -> tuple[int, int | None, int, float]:
        """What a setting's trainings are: epochs, training images (None: all, a cap at or above
        the data's own count included), base resolution and width."""
        base = setting.base(self.search.base)
        images, in_all = self.images(setting), self.search.data.train_images_in_all()
        return self.epochs(setting), None if images is not None and in_all is not None and images >= in_all else images, base.resolution, base.width

    def identity(self) -> dict:
        # "tries" stays, always empty: calibrations made before tries moved to the study's
        # attributes and without a try keep their fingerprint (and their default name).
        return {"search": self.search.identity(), "k": self.k, "reference": asdict(self.reference), "tries": []}

    @classmethod
    def from_identity(cls, data: dict) -> CalibrationConfig:
        return cls(
            search=SearchConfig.from_identity(data["search"]),
            reference=Setting(**data["reference"]),
            k=int(data["k"]),
            tries=tuple(Setting(**t) for t in data.get("tries", [])),  # a calibration made before: its tries
        )

    def fingerprint(self) -> str:
        return fingerprint(self)

    def earlier_fingerprints(self) -> list[str]:
        """The fingerprints an earlier scaler, which kept the tries in the identity (labelled
        with `:g`, so 1e+06 for 1000000), gave this configuration with its tries and with each
        shorter run of its first tries (a study begun with those, now asked for more): the
        longest first. Without tries, none (it gave the same as this one)."""
        earlier = [{**asdict(t), "label": ",".join(f"{flag}={v:g}" for flag, v in t.overrides().items())} for t in self.tries]
        return [identity_digest({**self.identity(), "tries": earlier[:n]}) for n in range(len(earlier), 0, -1)]

    def default_name(self, fingerprint: str | None = None) -> str:
        """calibrate-<the search's default name without its fingerprint>-<this fingerprint>."""
        return f"calibrate-{self.search.default_name().rsplit('-', 1)[0]}-{fingerprint or self.fingerprint()}"

    def name_under(self, root: Path) -> str:
        """The name this calibration runs under in `root` when none is given: the default; or,
        for one an earlier scaler began with these --try settings (or the first of them, its
        name held them), that one's, so that the same command resumes it and more tries are
        refused with the reason rather than started over in a new folder."""
        if not (root / self.default_name()).exists():
            for earlier in self.earlier_fingerprints():
                if (root / self.default_name(earlier)).exists():
                    return self.default_name(earlier)
        return self.default_name()

    def resumable(self, root: Path, name: str | None, reference_train_images: int | None,
                  tolerance: float, val_fraction: float) -> CalibrationConfig:
        """This configuration, or the spelling of the same options that the calibration folder
        records: a --reference-train-images equal to the proxy's own images, a surface
        search's --tolerance (as typed, `tolerance`), or a --val-fraction that the data does
        not use (`DataOptions.as_kept_before`), which an earlier scaler kept as given
        (`reference_setting`, `CandidateSpace.canonical` and `DataOptions.canonical` now
        leave them unset: one configuration)."""
        typed_space = replace(self.search.space, tolerance=tolerance)
        spellings = [self, replace(self, search=replace(self.search, space=typed_space))]
        spellings += [replace(c, reference=replace(c.reference, train_images=reference_train_images)) for c in spellings]
        spellings += [replace(c, search=replace(c.search, data=c.search.data.as_kept_before(val_fraction))) for c in spellings]
        return recorded_spelling(spellings, root=root, name=name, summary_name=SUMMARY_NAME)

    def images(self, setting: Setting) -> int | None:
        """The training images a setting asks for (None: all the data gives; the synthetic set
        renders SYNTHETIC_TRAIN unless told otherwise)."""
        return data_images(self.search) if setting.train_images is None else setting.train_images

    def epochs(self, setting: Setting) -> int:
        return self.search.train.epochs if setting.epochs is None else setting.epochs

    def data_needs(self, networks: list[list[dict[str, int]]]) -> tuple[int | None, int]:
        """The data the settings train on, prepared once: the most training images any setting
        asks for (None: all) and the largest resolution of `networks` (per setting, per
        candidate), at which the images are stored."""
        wanted = [self.images(s) for s in self.settings()]
        return (None if None in wanted else max(wanted)), max(n["resolution"] for row in networks for n in row)


def spread(candidates: list[Candidate], k: int) -> list[Candidate]:
    """`k` candidates spread over the set: the one with the largest alpha, the largest beta, the
    largest gamma (ties: the first), then farthest-point sampling in (log alpha, log beta,
    log gamma) (ties: the first). All of them when there are no more than `k`. In the set's
    order."""
    if len(candidates) <= k:
        return list(candidates)
    points = np.log(np.array([[c.alpha, c.beta, c.gamma] for c in candidates], dtype=float))
    picked: list[int] = []
    for axis in range(3):
        best = int(np.argmax(points[:, axis]))  # the first of equal maxima
        if best not in picked:
            picked.append(best)
    while len(picked) < k:
        distance = np.min(np.linalg.norm(points[:, None, :] - points[None, picked, :], axis=2), axis=1)
        distance[picked] = -1.0
        picked.append(int(np.argmax(distance)))
    return [candidates[i] for i in sorted(picked[:k])]


def count_networks(config: CalibrationConfig, candidates: list[Candidate]) -> list[list[dict[str, int]]]:
    """Per setting, per candidate: the resolution, params and MACs of the network it trains (a
    setting with another base resolution or width counts its own networks)."""
    out = []
    for setting in config.settings():
        if setting.base_resolution is None and setting.base_width is None:
            out.append([{"resolution": c.resolution, "params": c.params, "macs": c.macs} for c in candidates])
            continue
        base, phi = setting.base(config.search.base), config.search.space.phi
        row = []
        for c in candidates:
            try:
                scale, count = base.scaled(c.alpha, c.beta, c.gamma, phi)
            except UsageError as exc:  # the try's base, not the search's, is at fault
                raise UsageError(f"{setting.label!r}: candidate #{c.index}: {exc}", param="try") from None
            row.append({"resolution": scale.resolution, "params": count.params, "macs": count.macs})
        out.append(row)
    return out


def reference_at_chance(table: pd.DataFrame, classes: int | None) -> str | None:
    """Where the reference's best complete candidate (by mean top-1) is not above chance
    (`best_reaches_chance`): the words for it, since every candidate of the reference is then
    within a guess and its ranking, the one each setting is measured against, tells little.
    None otherwise."""
    done = table[(table["setting"] == REFERENCE) & (table["state"] == State.COMPLETE.value)]
    if (reached := best_reaches_chance(pd.to_numeric(done["top1"], errors="coerce"), done["top1_low"], classes)) is None:
        return None
    return (f"the reference's best candidate is not above chance: {reached}, so its ranking, and every setting's "
            "Spearman with it, tells little; train the reference longer (--reference-factor) or on more images")


def recommend(settings: list[dict[str, Any]]) -> int | None:
    """The index of the cheapest setting (by nominal cost; ties: the lower index) other than the
    reference whose Spearman with the reference is at least THRESHOLD and beyond chance (its
    p-value below 1 - LEVEL); None when none is."""
    eligible = [
        s for s in settings
        if s["index"] != REFERENCE and s.get("spearman") is not None and keeps_threshold(s["spearman"])
        and s.get("spearman_p") is not None and s["spearman_p"] < 1 - LEVEL
        and s.get("cost") is not None and math.isfinite(s["cost"])
    ]  # fmt: skip
    return min(eligible, key=lambda s: (s["cost"], s["index"]))["index"] if eligible else None


@register_experiment
class Calibration(DatasetContext, Experiment):
    """Train k spread candidates under every setting, `repeats` times each with the seeds the
    search would use (a candidate's repeat has the same seed under every setting)."""

    kind = "calibration"
    noun = "training"
    summary_name = SUMMARY_NAME
    options = {  # a calibration has no --pruner, --steps or --max-seconds of its own
        **{f"search.{key}": option for key, option in SEARCH_OPTIONS.items() if key not in ("pruner", "train.steps", "train.max_seconds")},
        "k": "--candidates", "reference.epochs": "the reference's epochs (--reference-epochs, or --reference-factor x --epochs)", "reference.train_images": "--reference-train-images",
    }

    def __init__(
        self, config: CalibrationConfig, candidates: list[Candidate], networks: list[list[dict[str, int]]], repeats: int = 1,
        *, fixed_settings: bool = False, set_size: int | None = None,
    ) -> None:
        """`fixed_settings`: a calibration made before tries were stored with the study, whose
        settings were fixed when it started (and recorded as a categorical parameter).
        `set_size`: how many candidates the search's set has (None where a calibration made
        before it was stored does not say), so a summary can tell whether more could be picked."""
        check_repeats(repeats)
        self.config = config
        self.fixed_settings = fixed_settings
        self.settings = config.settings()
        self.candidates = candidates
        self.set_size = set_size
        self.position = {c.index: i for i, c in enumerate(candidates)}
        self.networks = networks
        self.repeats = repeats
        self.dataset_fingerprint: str | None = None
        self.train_sizes: dict[int, int] = {}  # setting -> its training images, once prepared
        self._subsets: dict[int, Dataset] = {}
        self._storage_resolution: int | None = None  # the prepared data's

    @classmethod
    def plan(cls, config: CalibrationConfig, repeats: int = 1) -> Calibration:
        search = config.search
        whole = build_candidates(search.space, search.base, search.flops_tolerance)
        candidates = spread(whole, config.k)
        if len(candidates) < MIN_K:
            raise UsageError(f"the search's set has {len(candidates)} candidate(s); a rank correlation needs at least {MIN_K}: "
                             "widen the coefficient ranges or the tolerance (see scaler candidates)")
        return cls(config, candidates, count_networks(config, candidates), repeats, set_size=len(whole))

    @classmethod
    def config_from_identity(cls, identity: dict) -> CalibrationConfig:
        return CalibrationConfig.from_identity(identity)

    @classmethod
    def earlier_fingerprints(cls, config: CalibrationConfig) -> set[str]:
        return set(config.earlier_fingerprints())

    @classmethod
    def restore(cls, config: CalibrationConfig, attrs: Mapping[str, Any], repeats: int | None = None) -> Calibration:
        """Neither repeats nor tries shrink: the study's tries, then those of `config` it lacks,
        whose networks alone are counted. A try that needs more of the data than the study
        prepares (more training images, a higher resolution) is refused: the data is part of
        what the other settings' results mean. The base imported here must build the stored
        candidates (`check_stored`) before an added try's networks are counted with it."""
        stored = attrs[ATTR_CALIBRATION]
        candidates = [Candidate(**c) for c in stored["candidates"]]
        check_stored(config.search.base, candidates)
        repeats = repeats_in(attrs, repeats)
        networks = stored["networks"]
        set_size = stored.get("set_size")
        if "tries" not in stored:  # made before tries were stored: they were part of the configuration
            fixed = config.tries[: len(networks) - 2]  # what it began with (its fingerprint matched these first ones)
            if len(config.tries) > len(fixed):
                raise UsageError(
                    "this calibration was made by an earlier scaler, which fixed its tries when it started; "
                    "calibrate new tries under a new --name", param="try")
            return cls(replace(config, tries=fixed), candidates, networks, repeats, fixed_settings=True, set_size=set_size)
        kept = tuple(Setting(**t) for t in stored["tries"])
        added = tuple(t for t in config.tries if t.overrides() not in [k.overrides() for k in kept])
        if not added:
            return cls(replace(config, tries=kept), candidates, networks, repeats, set_size=set_size)
        before, merged = replace(config, tries=kept), replace(config, tries=kept + added)
        merged.validate()
        counted = networks + count_networks(replace(config, tries=added), candidates)[2:]
        prepared, needed = before.data_needs(networks), merged.data_needs(counted)
        if needed != prepared:
            images, resolution = prepared
            raise UsageError(
                f"{', '.join(t.label for t in added)} needs more of the data than this calibration prepares "
                f"({images or 'all'} training images, stored at {resolution} px); a try added later trains on "
                "those at most: ask for it with the first run, or under a new --name", param="try")
        return cls(merged, candidates, counted, repeats, set_size=set_size)

    def study_attrs(self) -> dict[str, Any]:
        stored: dict[str, Any] = {"candidates": [c.to_dict() for c in self.candidates], "networks": self.networks}
        if self.set_size is not None:
            stored["set_size"] = self.set_size
        if not self.fixed_settings:
            stored["tries"] = [asdict(t) for t in self.config.tries]
        return {ATTR_CALIBRATION: stored, ATTR_REPEATS: self.repeats}

    def refresh(self, attrs: Mapping[str, Any]) -> None:
        """More repeats or tries asked by another process (a database study) while this one
        runs. Tries only grow: if the study's no longer begin with this process's, two processes
        added different tries at once, and a setting's index no longer means one setting."""
        self.repeats = repeats_in(attrs, self.repeats)
        tries = attrs.get(ATTR_CALIBRATION, {}).get("tries")
        if self.fixed_settings or tries is None:
            return
        mine = [t.label for t in self.config.tries]
        if [t["label"] for t in tries][: len(mine)] != mine:
            raise RunError(
                f"another process changed this calibration's tries while this one ran ({', '.join(mine)} -> "
                f"{', '.join(t['label'] for t in tries)}); stop the others, then run one command at a time to add tries")
        if len(tries) > len(mine):
            self.config = replace(self.config, tries=tuple(Setting(**t) for t in tries))
            self.settings = self.config.settings()
            self.networks = attrs[ATTR_CALIBRATION]["networks"]

    # -- the work -------------------------------------------------------------------------
    def describe(self) -> str:
        n = len(self.settings) * len(self.candidates) * self.repeats
        dearer = [f"{self.settings[i].label} at {ratio:.2f}x" for i, ratio in self.nominal_costs().items() if i > PROXY and ratio >= 1]
        note = f" (not cheaper than the proxy: {', '.join(dearer)} its cost)" if dearer else ""
        return f"{len(self.settings)} settings x {len(self.candidates)} candidates x {self.repeats} repeat(s) = {n} trainings{note}"

    def nominal_costs(self) -> dict[int, float]:
        """Per setting, its nominal cost over the proxy's (MACs x epochs x training images): the
        images counted once the data is prepared, before that as asked (all: the data's count
        where that is known without loading it). A setting whose count is unknown is left out
        unless the proxy's is unknown alike (both take all)."""
        in_all = self.config.search.data.train_images_in_all()
        images = {i: self.train_sizes.get(i) or self.config.trains_as(setting)[1] or in_all for i, setting in enumerate(self.settings)}

        proxy = self._setting_cost(PROXY, images[PROXY] or 1)
        return {i: self._setting_cost(i, images[i] or 1) / proxy for i in images if (images[i] is None) == (images[PROXY] is None)}

    def items(self) -> list[WorkItem]:
        """Repeat by repeat, candidate by candidate, every setting: an interrupted calibration
        already has candidates scored under every setting."""
        return [
            WorkItem.of(setting=s, candidate=c.index, repeat=r)
            for r in range(self.repeats) for c in self.candidates for s in range(len(self.settings))
        ]  # fmt: skip

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {
            # an integer range, so that tries can be added; the categorical of the fixed settings before
            "setting": optuna.distributions.CategoricalDistribution(list(range(len(self.settings)))) if self.fixed_settings
            else optuna.distributions.IntDistribution(0, MAX_SETTINGS - 1),
            "candidate": optuna.distributions.CategoricalDistribution([c.index for c in self.candidates]),
            "repeat": optuna.distributions.IntDistribution(0, MAX_REPEATS - 1),
        }

    def label(self, item: WorkItem) -> str:
        setting = self.settings[item["setting"]]
        candidate = self.candidates[self.position[item["candidate"]]]
        network = self.networks[item["setting"]][self.position[candidate.index]]
        text = f"{setting.label}: {candidate_label(replace(candidate, resolution=network['resolution']))}"
        return f"{text} rep {item['repeat'] + 1}/{self.repeats}" if self.repeats > 1 else text

    def prepare(self, runtime: Runtime, check: Callable[[DataIdentity], None] | None = None) -> Dataset:
        """The data once, at the largest resolution and with the most training images any
        setting needs; a setting with fewer trains on the first of them (`take_train`). Its
        warnings add each setting's own, by label (`TrainConfig.batch_note` among them), and
        the base's `zero_init_note`."""
        _, self._storage_resolution = self.config.data_needs(self.networks)
        dataset = self._load(self._storage_resolution, runtime, check)  # the study's data: `check`ed before it is decoded
        self.dataset_fingerprint = dataset.fingerprint
        self._subsets = {}
        for index in range(len(self.settings)):
            self._subset(index, dataset, runtime)
        batch_note = self.config.search.train.batch_note
        whole = batch_note(len(dataset.train))  # the whole data smaller than a batch: said once, for the settings on all of it
        own = [note for note in (whole, self.config.search.base.zero_init_note()) if note]
        own += [  # e.g. a try on fewer training images than there are classes, or than a batch
            f"{self.settings[index].label}: {warning}"
            for index, subset in self._subsets.items()
            for warning in (*subset.warnings, batch_note(len(subset.train)) if len(subset.train) < len(dataset.train) else None)
            if warning and warning not in dataset.warnings
        ]
        return replace(dataset, warnings=dataset.warnings + tuple(own)) if own else dataset

    def _load(self, storage_resolution: int, runtime: Runtime, check: Callable[[DataIdentity], None] | None = None) -> Dataset:
        """The data with the most training images any setting needs, stored at `storage_resolution`."""
        images, _ = self.config.data_needs(self.networks)
        data = replace(self.config.search.data, train_images=images)
        return load_checked(data, self.config.search.train.seed, self.config.search.base.num_classes, storage_resolution, runtime, check)

    def _subset(self, index: int, context: Dataset, runtime: Runtime) -> Dataset:
        """Setting `index`'s data as its own `scaler search` command has it: stored at the
        largest resolution of its networks (the resize from the source to that size shapes the
        pixels, so a setting at another base resolution than the largest loads its own copy),
        and the first of the training images it asks for. A setting another process added
        since `prepare` gets its data the first time it runs."""
        if index not in self._subsets:
            storage_resolution = max(n["resolution"] for n in self.networks[index])
            data = context if storage_resolution == self._storage_resolution else self._load(storage_resolution, runtime)
            count = self.config.images(self.settings[index])
            self._subsets[index] = data if count is None else take_train(data, count)
            self.train_sizes[index] = len(self._subsets[index].train)
        return self._subsets[index]

    def epochs(self, context: Dataset, item: WorkItem) -> int:
        return self.config.epochs(self.settings[item["setting"]])

    def model(self, setting: int, candidate: Candidate, seed: int) -> nn.Module:
        """The network one setting trains for a candidate, its initial weights fixed by `seed`."""
        seed_everything(seed)
        return self.settings[setting].base(self.config.search.base).build(candidate.width_mult, candidate.depth_mult)

    def run(self, item: WorkItem, context: Dataset, runtime: Runtime, reporter: Reporter) -> Outcome:
        index = item["setting"]
        candidate = self.candidates[self.position[item["candidate"]]]
        network = self.networks[index][self.position[candidate.index]]
        seed = repeat_seed(self.config.search.train.seed, candidate.index, item["repeat"])
        train = replace(self.config.search.train, epochs=self.config.epochs(self.settings[index]), seed=seed)
        data = self._subset(index, context, runtime)
        outcome = train_outcome(self.model(index, candidate, seed), data, network["resolution"], train, runtime, reporter)
        return replace(outcome, attrs={**outcome.attrs, "seed": seed, "train_images": len(data.train)})

    def estimate_seconds(
        self, context: Dataset, runtime: Runtime, items: list[WorkItem], *, in_process: bool = True
    ) -> tuple[dict[WorkItem, float], str]:
        """Times each distinct network of `items` (see `time_networks`) as the proxy trains,
        takes each item's training from its rates (the setting's epochs over its training
        images, each epoch evaluated on the shared validation split), and adds its share of
        its network's first use still to pay (see `first_use_left`)."""
        if not items:
            return {}, "nothing left to train"
        search = self.config.search
        builds: dict[tuple, tuple[int, int]] = {}  # network -> a (setting, position) that builds it
        shapes: dict[WorkItem, tuple] = {}
        for item in items:
            setting, position = item["setting"], self.position[item["candidate"]]
            shapes[item] = self._shape(setting, position)
            builds.setdefault(shapes[item], (setting, position))
        by_shape: dict[tuple, list[WorkItem]] = {}
        for item, shape in shapes.items():
            by_shape.setdefault(shape, []).append(item)

        def measure(shape: tuple) -> Timing:
            setting, position = builds[shape]
            network, candidate = self.networks[setting][position], self.candidates[position]
            return estimate_seconds(
                lambda: self.model(setting, candidate, search.train.seed), network["resolution"],
                self._subsets.get(PROXY, context), search.train, runtime,
            )  # fmt: skip

        def training(item: WorkItem, timing: Timing) -> float:
            """One item's warm training: its setting's epochs over its training images."""
            setting = item["setting"]
            images = self._train_images(setting)
            return timing.training_seconds(replace(search.train, epochs=self.config.epochs(self.settings[setting])),
                                           images) if images else math.nan

        def work(shape: tuple, timing: Timing) -> float:
            return sum(training(item, timing) for item in by_shape[shape])

        timings = time_networks(
            {shape: self.networks[s][p]["macs"] for shape, (s, p) in builds.items()}, measure,
            work=work, in_process=in_process,
        )  # fmt: skip
        return {
            item: training(item, timings[shape]) + first_use_left(timings[shape], in_process) / len(by_shape[shape])
            for item, shape in shapes.items()
        }, describe_timings(timings.values())

    def _shape(self, setting: int, position: int) -> tuple:
        """What makes two trainings the same network, as far as the plan records it:
        resolution, parameters and MACs."""
        return tuple(sorted(self.networks[setting][position].items()))

    def _train_images(self, setting: int) -> int | None:
        """The training images of `setting`: counted once prepared, else as it asks."""
        return self.train_sizes.get(setting) or self.config.images(self.settings[setting])

    def _setting_cost(self, setting: int, images: int | None = None) -> float:
        """Nominal cost of one training of every candidate under `setting`."""
        return sum(self._cost(setting, p, images) for p in range(len(self.candidates)))

    def _cost(self, setting: int, position: int, images: int | None = None) -> float:
        """Nominal cost of one training: MACs x epochs x training images."""
        count = images or self._train_images(setting)
        if not count:
            return math.nan
        return float(self.networks[setting][position]["macs"]) * self.config.epochs(self.settings[setting]) * count

    # -- results --------------------------------------------------------------------------
    def table(self, records: list[Record]) -> pd.DataFrame:
        """One row per (setting, candidate), its repeats aggregated (see `aggregate`), in the
        settings' order, then the candidates'."""
        by_setting = group_by(records, "setting")
        rows = []
        for index, setting in enumerate(self.settings):
            groups = group_by(by_setting.get(index, []), "candidate")
            for position, c in enumerate(self.candidates):
                network = self.networks[index][position]
                row = {"setting": index, "label": setting.label, "candidate": c.index, "alpha": c.alpha, "beta": c.beta, "gamma": c.gamma, **network}
                row.update(aggregate(groups.get(c.index, [])))
                rows.append(row)
        return pd.DataFrame(rows, columns=RESULT_COLUMNS)

    def summary(self, frame: pd.DataFrame, records: list[Record]) -> dict[str, Any]:
        # Finished rows only: an unfinished row's top-1 is the mean of the repeats it has so far.
        top1 = pd.to_numeric(frame["top1"], errors="coerce").where(frame["state"] == State.COMPLETE.value)
        scores = {index: top1[frame["setting"] == index].to_numpy(dtype=float) for index in range(len(self.settings))}
        by_setting = group_by(records, "setting")
        seed = self.config.search.train.seed
        # The pairs the reference tells apart: what a setting can be judged on when the
        # reference's ranking of the rest is within its own noise.
        apart, tested = separated_pairs(group_by(by_setting.get(REFERENCE, []), "candidate")) or (None, None)
        settings = []
        for index, setting in enumerate(self.settings):
            recorded = [int(r.attrs["train_images"]) for r in by_setting.get(index, []) if r.attrs.get("train_images")]
            images = self.train_sizes.get(index) or max(recorded, default=None) or self.config.images(setting)
            cost = self._setting_cost(index, images)
            seconds = pd.to_numeric(frame.loc[frame["setting"] == index, "train_seconds"], errors="coerce")
            agreement = None if index == REFERENCE else bootstrap_agreement(scores[index], scores[REFERENCE], seed=seed)
            (spearman, s_low, s_high), (kendall, k_low, k_high) = agreement or ((None,) * 3, (None,) * 3)
            # How well the setting agrees with itself: a reference that reorders the candidates
            # between its own repeats is a noisy target, and a Spearman with it says little.
            reliability = split_half_reliability(per_repeat_top1(list(group_by(by_setting.get(index, []), "candidate").values())), seed=seed)
            r_value, r_low, r_high = reliability or (None,) * 3
            mean_of = {c.index: float(v) for c, v in zip(self.candidates, scores[index]) if math.isfinite(v)}  # the table's top-1
            judged = None if apart is None or index == REFERENCE else [(hi, lo) for hi, lo in apart if hi in mean_of and lo in mean_of]
            settings.append({
                "index": index,
                "label": setting.label,
                "role": "reference" if index == REFERENCE else "proxy" if index == PROXY else "try",
                "overrides": setting.overrides(),
                "epochs": self.config.epochs(setting),
                "train_images": images,
                "base_resolution": setting.base(self.config.search.base).resolution,
                "base_width": setting.base(self.config.search.base).width,
                "cost": cost,
                "train_seconds": float(seconds.sum()) if seconds.notna().any() else None,
                "scored": int(np.isfinite(scores[index]).sum()),
                # the candidates behind its Spearman: scored under it and under the reference
                "compared": None if index == REFERENCE else int((np.isfinite(scores[index]) & np.isfinite(scores[REFERENCE])).sum()),
                "spearman": spearman, "spearman_low": s_low, "spearman_high": s_high,
                "spearman_p": None if index == REFERENCE else agreement_p_value(scores[index], scores[REFERENCE], seed=seed),
                "kendall": kendall, "kendall_low": k_low, "kendall_high": k_high,
                "reliability": r_value, "reliability_low": r_low, "reliability_high": r_high,
                # the reference: how many pairs it tells apart of those it tested; the others:
                # how many of those apart they score, and order alike
                "pairs_apart": len(apart) if apart is not None and index == REFERENCE else None,
                "pairs_tested": tested if index == REFERENCE else None,
                "pairs_judged": None if judged is None else len(judged),
                "pairs_kept": None if judged is None else sum(mean_of[hi] > mean_of[lo] for hi, lo in judged),
            })  # fmt: skip
        proxy_cost = settings[PROXY]["cost"]
        for entry in settings:
            entry["cost"] = entry["cost"] / proxy_cost if proxy_cost and math.isfinite(proxy_cost) else None
        chosen = recommend(settings)
        for entry in settings:
            entry["recommended"] = entry["index"] == chosen
        return {
            "seed": seed,
            "dataset_fingerprint": self.dataset_fingerprint,
            "candidates": [c.index for c in self.candidates],
            "set_size": self.set_size,
            "repeats": self.repeats,
            "threshold": THRESHOLD,
            "separated_pairs": None if apart is None else [list(pair) for pair in apart],
            "settings": settings,
            "recommended": None if chosen is None else settings[chosen]["label"],
        }


def read_calibration(folder: Path) -> tuple[pd.DataFrame, dict]:
    """A calibration folder's results.csv and calibration.json, checked as `read_outputs`
    checks them."""
    frame, info = read_outputs(folder, SUMMARY_NAME, RESULT_COLUMNS, numeric=NUMERIC_COLUMNS, text=("label",))
    return whole_numbers(frame[RESULT_COLUMNS], COUNT_COLUMNS), info
