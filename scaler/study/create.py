"""Creating a study, opening it again (never over recorded results), and joining it from
another machine: names, configuration fingerprints, stored experiment attributes."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from scaler.errors import RunError, UsageError
from scaler.files import is_temporary
from scaler.study.experiment import Experiment, ExperimentConfig, experiment_class, fingerprint, kind_name
from scaler.study.handle import StudyHandle
from scaler.study.lock import LOCK_NAME, writers_in_turn
from scaler.study.pruning import OneValuePerItem
from scaler.study.results import summary_intact
from scaler.study.storage import JOURNAL_NAME, is_url, mask_url, open_storage, same_storage, storage_label

# A study name is one path component: it names the folder under --root and the stored study.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
ATTR_KIND, ATTR_CONFIG, ATTR_FINGERPRINT = "scaler_kind", "scaler_config", "scaler_fingerprint"
# Studies written before kinds were recorded are all compound searches.
LEGACY_KIND = "search"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _load(storage: optuna.storages.BaseStorage, name: str, experiment: Experiment) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(0), pruner=OneValuePerItem(experiment.pruner(), experiment.item_of))


NAME_RULE = "1-128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit (one folder name, no path)"


def validate_name(name: str, *, param: str = "name") -> None:
    """UsageError (naming `param`) unless `name` is one safe path component (letters, digits,
    . _ + -). An empty name is refused too: it is not "no name" (callers test `is None`)."""
    if not name:
        raise UsageError(f"the name is empty; use {NAME_RULE}", param=param)
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise UsageError(f"name {name!r} is not allowed; use {NAME_RULE}", param=param)


class _Damaged(Exception):
    """A summary file that exists but cannot be used; the message says why."""


def read_summary(path: Path) -> dict | None:
    """A study folder's JSON summary, None when absent; _Damaged when unreadable."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _Damaged(f"{path} is not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), str):
        raise _Damaged(f"{path} is not a scaler summary (no fingerprint)")
    if not summary_intact(data):
        raise _Damaged(f"{path} is not the summary the study wrote (its digest differs)")
    return data


def recorded_spelling(configs: Sequence[Any], *, root: Path, name: str | None, summary_name: str) -> Any:
    """The first of `configs` (one study's options as this scaler spells them, then as earlier
    scalers recorded them) whose study folder under `root` (`name`, or the configuration's
    `default_name()`) records its fingerprint, so that the command that began a study still
    resumes it; the first when none is recorded."""
    for config in configs:
        try:
            summary = read_summary(root / (name if name is not None else config.default_name()) / summary_name)
        except _Damaged:  # rebuilt from the study when it is opened; it cannot vouch for a spelling
            summary = None
        if summary is not None and summary["fingerprint"] == fingerprint(config):
            return config
    return configs[0]


def open_study(
    kind: type[Experiment],
    config: ExperimentConfig,
    *,
    folder: Path,
    storage_url: str | None = None,
    name: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> StudyHandle:
    """Create a study of `kind`, or open the existing one of the same name and configuration.

    `settings` are plan options that are not part of the identity (a search's repeats): given
    to `plan` / `restore`, and the experiment's attributes are stored again when they change.

    Call it inside `folder_lock(folder)`. Refuses (UsageError) a name that exists with another
    configuration or another storage, and (RunError) a folder whose summary records a study
    its storage no longer holds: recorded results are never overwritten. Planning
    (`kind.plan`) runs only for a new study.
    """
    config.validate()
    if storage_url is not None and not is_url(storage_url):
        raise UsageError(
            f"storage {storage_url!r} is not a database URL; give one like "
            "postgresql+psycopg2://user:pw@host/db, or leave --storage out for the search folder's journal",
            param="storage",
        )
    name = name or folder.name
    validate_name(name)
    storage_url = storage_url or str(folder / JOURNAL_NAME)
    print_ = fingerprint(config)
    accepted = {print_, *kind.earlier_fingerprints(config)}
    summary_path = folder / kind.summary_name
    notes: list[str] = []
    try:
        previous = read_summary(summary_path)
        damaged = None
    except _Damaged as exc:
        previous, damaged = None, str(exc)
    if previous is not None:
        if previous["fingerprint"] not in accepted:
            raise UsageError(_clash_message(name, previous.get("config", {}), config.identity(), kind.options))
        recorded = previous.get("storage")
        if recorded is not None and not same_storage(str(recorded), storage_url):
            how = "with the same --storage" if is_url(str(recorded)) else "without --storage (and SCALER_STORAGE unset)"
            raise UsageError(
                f"{name!r} keeps its study in {mask_url(str(recorded))}, not {storage_label(storage_url)}; "
                f"rerun {how}, or pick a new --name"
            )
    new_journal = not is_url(storage_url) and not Path(storage_url).exists()
    storage = open_storage(storage_url, exclusive=True)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    found = existing.get(name)
    if found is not None and ATTR_FINGERPRINT in found.user_attrs:
        attrs = found.user_attrs
        stored = experiment_class(attrs.get(ATTR_KIND, LEGACY_KIND))
        if stored is not kind:  # no option of this kind's could match the other's configuration
            raise UsageError(f"study {name!r} in {storage_label(storage_url)} is of kind {stored.kind!r}, not {kind.kind!r}; "
                             "pick a new --name (or resume it with the command that made it)")
        if attrs.get(ATTR_FINGERPRINT) not in accepted:
            raise UsageError(_clash_message(name, attrs.get(ATTR_CONFIG, {}), config.identity(), kind.options))
        try:
            experiment = kind.restore(config, attrs, **(settings or {}))
        except KeyError as missing:  # killed between the fingerprint and the rest (scaler 0.1)
            if found.n_trials:
                raise RunError(f"study {name!r} lacks its stored {missing}; move {folder} away to start again") from None
            return _create(kind, config, storage, name, folder, storage_url, print_, settings)
        study = _load(storage, name, experiment)
        for key, value in experiment.study_attrs().items():
            if attrs.get(key) != value:
                study.set_user_attr(key, value)
        if damaged:
            notes.append(f"{damaged}; rebuilt from the study in {storage_label(storage_url)}")
    elif found is not None and found.n_trials:
        raise RunError(f"study {name!r} in {mask_url(storage_url)} has trials but no scaler configuration")
    elif previous is not None or damaged:
        what = f"{summary_path} records this study" if previous is not None else damaged
        if len(existing) == 1 and not is_url(storage_url):  # the folder's own journal, of another name
            (other,) = existing
            where = (f"a copy of {folder.parent / other}, which is still there: resume that one" if (folder.parent / other).exists()
                     else f"renamed: rename it back to {other!r} to resume it")
            raise RunError(
                f"{storage_url} holds study {other!r}, not {name!r} (a study's name is its folder's): the folder is {where}, "
                f"or move {folder} away to start a new study"
            )
        raise RunError(
            f"{what}, but {storage_label(storage_url)} holds no study {name!r} (missing, emptied or "
            f"replaced); refusing to start over and overwrite recorded results: restore the study's "
            f"storage, or move {folder} away to start a new study"
        )
    else:  # new, or killed between create_study and recording its configuration
        try:
            _check_no_foreign_files(folder, storage_url)
            return _create(kind, config, storage, name, folder, storage_url, print_, settings)
        except BaseException:  # a plan refused: leave no empty journal behind (nor, so, the folder)
            journal = Path(storage_url)
            if new_journal and journal.exists() and journal.stat().st_size == 0:
                journal.unlink()
            raise
    handle = StudyHandle(study, experiment, name, folder, storage_url, exclusive=not is_url(storage_url))
    handle.notes.extend(notes)
    return handle


def _create(
    kind: type[Experiment],
    config: ExperimentConfig,
    storage: optuna.storages.BaseStorage,
    name: str,
    folder: Path,
    storage_url: str,
    print_: str,
    settings: Mapping[str, Any] | None,
) -> StudyHandle:
    """Plan a new study and record its configuration; the fingerprint last, as the mark of a
    study whose creation finished."""
    experiment = kind.plan(config, **(settings or {}))
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(0),
        pruner=OneValuePerItem(experiment.pruner(), experiment.item_of),
        load_if_exists=True,
    )
    study.set_user_attr(ATTR_KIND, kind_name(kind))
    study.set_user_attr(ATTR_CONFIG, config.identity())
    for key, value in experiment.study_attrs().items():
        study.set_user_attr(key, value)
    study.set_user_attr(ATTR_FINGERPRINT, print_)
    return StudyHandle(study, experiment, name, folder, storage_url, exclusive=not is_url(storage_url))


def join_study(storage_url: str, name: str, folder: Path | None = None) -> StudyHandle:
    """Open an existing study from its database alone (what `scaler worker` does).

    Journal files are not shared this way: a study folder's journal belongs to the one process
    holding the folder's lock (and the worker processes it starts itself).
    """
    if not name:  # only the empty name: studies made before names were checked keep theirs
        validate_name(name, param="study")
    storage = open_storage(storage_url, create=False)
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name not in summaries:
        known = ", ".join(sorted(summaries)) or "none"
        raise UsageError(f"study {name!r} not found in {mask_url(storage_url)}; studies there: {known}", param="study")
    attrs = summaries[name].user_attrs
    if ATTR_FINGERPRINT not in attrs:
        raise UsageError(f"study {name!r} was not created by scaler (or its creation was cut short)", param="study")
    kind = experiment_class(attrs.get(ATTR_KIND, LEGACY_KIND))
    if folder is not None:
        _check_folder(folder, name, kind, storage_url)
    experiment = kind.restore(kind.config_from_identity(attrs[ATTR_CONFIG]), attrs)
    return StudyHandle(_load(storage, name, experiment), experiment, name, folder, storage_url)


def _check_folder(folder: Path, name: str, kind: type[Experiment], storage_url: str) -> None:
    """UsageError unless `folder` can take study `name`'s result files: an existing folder
    that holds no other study's results (another name, or the same name in another storage:
    they would be overwritten) and no journal other than the study's own (a local worker of a
    journal study joins that journal's folder)."""
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise UsageError(f"folder {folder} {what}; give the study's results folder (or leave --folder out)", param="folder")
    try:
        previous = read_summary(folder / kind.summary_name)
    except _Damaged:  # rewritten from the study, as its own command would
        previous = None
    recorded = previous.get("storage") if previous is not None else None
    if previous is not None and (previous.get("name") != name or recorded is not None and not same_storage(str(recorded), storage_url)):
        where = "" if recorded is None else f" in {recorded}"  # summaries before scaler recorded the storage name none
        raise UsageError(f"folder {folder} holds the results of study {previous.get('name')!r}{where}, not of {name!r} "
                         f"in {storage_label(storage_url)}: they would be overwritten; give the folder of study {name!r}, "
                         "or a new one", param="folder")
    journal = folder / JOURNAL_NAME
    own = not is_url(storage_url) and Path(storage_url).resolve() == journal.resolve()
    if journal.exists() and journal.stat().st_size and not own:
        raise UsageError(f"folder {folder} keeps a study of its own ({JOURNAL_NAME}); give the folder of study {name!r}, or a new one",
                         param="folder")
    with writers_in_turn(folder):  # not between a first results.csv and its summary
        foreign = [] if (folder / kind.summary_name).exists() else _foreign_files(folder, storage_url, kind.folder_files)
    if foreign:  # a data set, or another tool's results.csv: overwritten or mixed with the study's files
        raise UsageError(f"folder {folder} holds {_listed(foreign)} and no study; give the folder of study {name!r} "
                         "(or an empty one)", param="folder")


def _check_no_foreign_files(folder: Path, storage_url: str) -> None:
    """UsageError when the folder of a study about to be created holds anything but the lock,
    its storage (the journal, or a SQLite file kept there) and the temporaries of atomic
    writes: another tool's results, a data set, whatever `--name` happened to hit would be
    overwritten or mixed with the study's files."""
    foreign = _foreign_files(folder, storage_url)
    if foreign:
        raise UsageError(f"folder {folder} already holds {_listed(foreign)} and no study; pick another --name (or --root), "
                         "or move its files away")


def _foreign_files(folder: Path, storage_url: str, own_files: Sequence[str] = ()) -> list[str]:
    """What `folder` holds besides the lock, the study's storage kept there (its journal, or a
    SQLite file), `own_files` and the temporaries of atomic writes, by name."""
    own = {LOCK_NAME, *own_files}
    if not is_url(storage_url) and Path(storage_url).parent == folder:
        own.add(Path(storage_url).name)
    elif storage_url.startswith("sqlite:"):
        from sqlalchemy.engine import make_url

        database = Path(make_url(storage_url).database or "")
        if database.parent.resolve() == folder.resolve():
            own |= {database.name + suffix for suffix in ("", "-journal", "-wal", "-shm")}
    return sorted(p.name for p in folder.iterdir() if p.name not in own and not is_temporary(p.name))


def _listed(names: Sequence[str]) -> str:
    """The first three of `names`, and how many more."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _clash_message(name: str, old: dict, new: dict, options: Mapping[str, str]) -> str:
    """The first differences between a study's recorded identity and the one asked for, each
    named by the option that sets it (`Experiment.options`), else by its key; the options a
    user types (top-level keys) before what they derive (a strategy's coefficients)."""
    a, b = _flat(old), _flat(json.loads(json.dumps(new)))  # as recorded: a tuple reads back as a list
    keys = sorted((k for k in set(a) | set(b) if a.get(k) != b.get(k)), key=lambda k: (k.count("."), k))
    diffs = [_difference(k, a.get(k, _ABSENT), b.get(k, _ABSENT), options) for k in keys]
    shown = "; ".join(diffs[:3]) + ("; ..." if len(diffs) > 3 else "")
    return (
        f"study {name!r} already exists with another configuration ({shown}); "
        "rerun with its original options, or pick a new --name"
    )


def _flat(data: dict, prefix: str = "") -> dict:
    """An identity as one level of dotted keys; a list of named entries (a comparison's
    strategies) as one key per name, its other values as a tuple: 'strategies.width'."""
    out: dict = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
            out.update({f"{prefix}{key}.{v['name']}": tuple(x for k, x in v.items() if k != "name") for v in value})
        else:
            out[f"{prefix}{key}"] = value
    return out


_ABSENT = object()  # a key one identity has and the other lacks


def _difference(key: str, old: object, new: object, options: Mapping[str, str]) -> str:
    """'--candidates: 100 -> 7', '--alpha-range stop: 1.2 -> 1.4', 'k: 100 -> 7' where no
    option sets the key. None is 'default' (an option not given: --lr, the optimizer's own), a
    key only one side has 'unset'; a switch pair's on/off is its flag ('--zero-init/--standard-init:
    --standard-init -> --zero-init'; an identity leaves such a switch out when off)."""
    parts = key.split(".")
    above = next((n for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in options), None)
    label = key if above is None else " ".join([options[".".join(parts[:above])], *parts[above:]])
    on, _, off = label.partition("/")
    if off.startswith("--") and all(v is _ABSENT or isinstance(v, bool) for v in (old, new)) and (old is True) != (new is True):
        return f"{label}: {on if old is True else off} -> {on if new is True else off}"

    def shown(value: object, short: bool) -> str:
        if value is _ABSENT:
            return "unset"
        if value is None:
            return "default"
        if isinstance(value, tuple):
            return "(" + ", ".join(shown(v, short) for v in value) + ")"
        if isinstance(value, float):
            return f"{value:g}" if short else repr(value)
        return str(value)

    # 6 digits (0.1, 1e-05), unless that hides the difference ('0.1 -> 0.1' for 0.1000001)
    short = shown(old, True) != shown(new, True)
    return f"{label}: {shown(old, short)} -> {shown(new, short)}"
