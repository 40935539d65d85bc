"""What every data source provides: a fingerprint of everything its data depends on (it names
the memo entry and the disk-cache file) and, on demand, the decoded splits (`Loaded`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from scaler.data.split import ImageSplit

# Bumped whenever rendering or the cache layout changes: part of every fingerprint. (Decoding
# image files has its own version, folder.DECODER_VERSION, in folder fingerprints only.)
FORMAT_VERSION = 5  # 3: the synthetic classes by dimension; 4: objects in contrasting colours, coarse to fine textures; 5: objects faded to 10-100% visibility


class Loaded(NamedTuple):
    """What a source's `load` returns, and what the disk cache stores. `decoded` counts images
    decoded or rendered; `warnings` are for the user, one line each."""

    classes: tuple[str, ...]
    train: ImageSplit
    val: ImageSplit
    skipped: int
    decoded: int
    warnings: tuple[str, ...] = ()


class Source(Protocol):
    def fingerprint(self) -> str:
        """A hash of every input and option the decoded data depends on."""
        ...

    @property
    def stamps(self) -> list[list]:
        """`file_stamps` of the files the data is decoded from (empty for rendered data): what
        a study keeps, to say which files changed when it is resumed on other ones."""
        ...

    def local_stamp(self) -> str:
        """This machine's copy of the files the data is decoded from (see `local_stamp`); empty
        for data rendered from the fingerprint's inputs alone."""
        ...

    def stored_images(self) -> tuple[int, int]:
        """How many images `load` stores at the most, and their size in px, found without
        decoding any: what the memory check counts before loading."""
        ...

    def load(self) -> Loaded:
        """Decode (or render) the data."""
        ...


def digest(parts: dict) -> str:
    """The fingerprint of a source described by `parts` (JSON-able), FORMAT_VERSION included."""
    text = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def local_stamp(files: Sequence[Path]) -> str:
    """Where this machine's copy of `files` lives and when each last changed (absolute path,
    inode, change time): what a decoded copy kept on this machine (memo, disk cache) must match.
    It is not in the fingerprint, which must agree on every machine holding the same files; a
    file replaced by one of the same size and mtime (cp -p, rsync -a, tar x) changes only this."""
    stamps = []
    for f in files:
        st = f.stat()
        stamps.append([str(f.resolve()), st.st_dev, st.st_ino, st.st_ctime_ns])
    return hashlib.blake2b(json.dumps(stamps).encode(), digest_size=16).hexdigest()


def file_stamps(root: Path, files: Sequence[Path]) -> list[list]:
    """Relative path, size and mtime of each file: what the fingerprint of a source hashes."""
    stamps = []
    for f in files:
        st = f.stat()
        stamps.append([f.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return stamps
