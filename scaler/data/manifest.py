"""The files a study's data was decoded from, kept in the study's folder (`MANIFEST_NAME`),
and the words for what changed when the study is resumed on other files: the fingerprint
alone says only that something did, and a user who copied the folder without its
modification times, or whose editor left a file in it, could not tell which."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from scaler.data.dataset import SYNTHETIC_SOURCE, DataIdentity, Dataset
from scaler.files import atomic_write_text

MANIFEST_NAME = "data-files.json"
_NAMED = 3  # files named per kind of change before "and N more"


def keep_files(folder: Path, dataset: Dataset) -> None:
    """Write the stamps of `dataset`'s files, the data the study in `folder` runs on, to its
    manifest, unless it holds them already (nothing is written for rendered data). Called only
    while the data matches the study's fingerprint, so a manifest of another fingerprint (a
    study removed and begun again under its name) is replaced."""
    path = folder / MANIFEST_NAME
    if not dataset.files:
        return
    try:
        if json.loads(path.read_text()).get("fingerprint") == dataset.fingerprint:
            return
    except (OSError, ValueError, AttributeError):
        pass  # none yet, or unreadable: written now
    atomic_write_text(path, json.dumps({"fingerprint": dataset.fingerprint, "files": dataset.files}))


def kept_files(folder: Path | None) -> dict[str, tuple[int, int]] | None:
    """The files the study in `folder` kept, by path: (size, mtime); None where it kept none
    (rendered data, a study begun before it kept them, no folder) or they cannot be read."""
    try:
        kept = json.loads((folder / MANIFEST_NAME).read_text())["files"] if folder is not None else None
        return {str(path): (size, mtime) for path, size, mtime in kept} if kept is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def file_changes(kept: dict[str, tuple[int, int]], source: str, files: Sequence[Sequence], times: bool = True) -> str | None:
    """How `files` (stamps of the data `source` names) differ from `kept` (files added, removed,
    of another size, or, with `times`, with only a new modification time), a few of each named;
    None where they are the same."""
    after = {path: (size, mtime) for path, size, mtime in files}
    both = sorted(kept.keys() & after.keys())
    changes = (
        ("added", sorted(after.keys() - kept.keys()), ""),
        ("removed", sorted(kept.keys() - after.keys()), ""),
        ("of another size", [p for p in both if kept[p][0] != after[p][0]], ""),
        ("with only a new modification time", [p for p in both if times and kept[p][0] == after[p][0] and kept[p][1] != after[p][1]],
         ", as a copy that did not keep the times leaves them (cp -p and rsync -a keep them)"),
    )  # fmt: skip
    parts = [f"{len(paths)} file(s) {what} ({_named(paths)}){why}" for what, paths, why in changes if paths]
    return f"in {source}, " + "; ".join(parts) if parts else None


def what_changed(folder: Path | None, dataset: Dataset | DataIdentity) -> str | None:
    """How `dataset`'s files (a data set's, or its identity's before it is decoded) differ from
    those the study in `folder` kept (`file_changes`), or that they do not, where its
    fingerprint changed all the same. None where the study kept none, so that the caller says
    it in general terms."""
    if not dataset.files:
        return "the built-in synthetic data redrawn by a newer scaler" if dataset.source == SYNTHETIC_SOURCE else None
    kept = kept_files(folder)
    if kept is None:
        return None
    return file_changes(kept, dataset.source, dataset.files) or (
        f"the image files of {dataset.source} are as they were (names, sizes, times): what changed is around them (a "
        "file or folder its warnings name) or how they are read (a newer scaler)")


def _named(paths: list[str]) -> str:
    return ", ".join(paths[:_NAMED]) + (f" and {len(paths) - _NAMED} more" if len(paths) > _NAMED else "")
