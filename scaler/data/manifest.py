"""The files a study's data was decoded from, kept in the study's folder (`MANIFEST_NAME`),
and the words for what changed when the study is resumed on other files: the fingerprint
alone says only that something did, and a user who copied the folder without its
modification times, or whose editor left a file in it, could not tell which."""

from __future__ import annotations

import json
from pathlib import Path

from scaler.data.dataset import SYNTHETIC_SOURCE, Dataset
from scaler.files import atomic_write_text

MANIFEST_NAME = "data-files.json"
_NAMED = 3  # files named per kind of change before "and N more"


def keep_files(folder: Path, dataset: Dataset) -> None:
    """Write the stamps of `dataset`'s files to the folder's manifest, once: a study keeps the
    files it started with (nothing is written for rendered data)."""
    path = folder / MANIFEST_NAME
    if dataset.files and not path.exists():
        atomic_write_text(path, json.dumps({"fingerprint": dataset.fingerprint, "files": dataset.files}))


def what_changed(folder: Path | None, dataset: Dataset) -> str | None:
    """How `dataset`'s files differ from those the study in `folder` kept (files added,
    removed, of another size, or with only a new modification time), a few of each named. None
    where the study kept none (a study begun before it kept them, or no folder), so that the
    caller says it in general terms."""
    if not dataset.files:
        return "the built-in synthetic data redrawn by a newer scaler" if dataset.source == SYNTHETIC_SOURCE else None
    try:
        kept = json.loads((folder / MANIFEST_NAME).read_text())["files"] if folder is not None else None
        before = {str(path): (size, mtime) for path, size, mtime in kept}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    after = {path: (size, mtime) for path, size, mtime in dataset.files}
    both = sorted(before.keys() & after.keys())
    changes = (
        ("added", sorted(after.keys() - before.keys()), ""),
        ("removed", sorted(before.keys() - after.keys()), ""),
        ("of another size", [p for p in both if before[p][0] != after[p][0]], ""),
        ("with only a new modification time", [p for p in both if before[p][0] == after[p][0] and before[p][1] != after[p][1]],
         ", as a copy that did not keep the times leaves them (cp -p and rsync -a keep them)"),
    )  # fmt: skip
    parts = [f"{len(paths)} file(s) {what} ({_named(paths)}){why}" for what, paths, why in changes if paths]
    if not parts:
        return (f"the image files of {dataset.source} are as they were (names, sizes, times): what changed is "
                "around them (a file or folder its warnings name) or how they are read (a newer scaler)")
    return f"in {dataset.source}, " + "; ".join(parts)


def _named(paths: list[str]) -> str:
    return ", ".join(paths[:_NAMED]) + (f" and {len(paths) - _NAMED} more" if len(paths) > _NAMED else "")
