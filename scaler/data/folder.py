"""Image folders in ImageFolder layout: one sub-folder of images per class, split into train/val
either by ``train/`` and ``val/`` sub-folders or automatically (stratified, seeded).

Images are found by extension (case-insensitive), recursively; hidden entries (``.DS_Store``,
``._x.jpg``) and ``__MACOSX`` are ignored and a symlinked folder is visited once. A file that
cannot be used is skipped and named in the warnings with its reason; so is anything in the
layout that would otherwise leave classes or files out silently.
"""

from __future__ import annotations

import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from scaler.data.images import Unreadable, decode_image, max_pixels
from scaler.data.source import Loaded, digest, file_stamps, local_stamp
from scaler.data.split import ImageSplit, stratified_take
from scaler.errors import UsageError

# The extensions torchvision's ImageFolder accepts, and .gif.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff",
                    ".webp")
# Bumped whenever the decoding of image files changes: hashed into folder fingerprints only, so
# the synthetic and CIFAR-10 fingerprints (and their caches) stay as they are.
DECODER_VERSION = 1
_NAMED = 3  # how many files or classes a message names before "and N more"


class FolderSource:
    """The data folder `root`: scanned, and its layout checked, when constructed; decoded by
    `load`. `source` is the string the user gave, for messages."""

    def __init__(self, source: str, root: Path, storage: int, n_train: int | None,
                 n_val: int | None, val_fraction: float, seed: int) -> None:
        self.source, self.root, self.storage = source, root, storage
        self.n_train, self.n_val, self.val_fraction, self.seed = n_train, n_val, val_fraction, seed
        train_root, val_root = _layout(root)
        self.presplit = val_root is not None
        class_dirs = _class_dirs(train_root)
        if not class_dirs:
            raise UsageError(f"data folder {train_root} has no class sub-folders; it needs one "
                             "sub-folder of images per class")
        if len(class_dirs) < 2:
            raise UsageError(f"data folder {train_root} has 1 class ({_class(class_dirs[0].name)}); "
                             "it needs at least 2 class sub-folders")
        self.classes = tuple(d.name for d in class_dirs)
        val_dirs = {d.name: d for d in _class_dirs(val_root)} if val_root is not None else {}
        walk = _ClassWalk(root, [*class_dirs, *val_dirs.values()])
        self.train_files = [walk.files(d) for d in class_dirs]
        self.val_files: list[list[Path]] | None = None
        # Warnings about the layout: hashed into the fingerprint, so cached ones stay true.
        self.notes = _loose_images(train_root, "train/" if self.presplit else "the data folder")
        self.notes += _dangling_classes(train_root)
        if val_root is not None:
            extra = sorted(set(val_dirs) - set(self.classes))
            if extra:
                raise UsageError(f"val/ has class folder(s) {_classes(extra)} that train/ lacks; "
                                 f"val/ may only hold train/'s classes "
                                 f"({_classes(self.classes, 10)})")
            self.val_files = [walk.files(val_dirs[c]) if c in val_dirs else []
                              for c in self.classes]
            self.notes += _loose_images(val_root, "val/") + _dangling_classes(val_root) + _unused_folders(root)
        self.notes += walk.notes()
        for i, name in enumerate(self.classes):
            if not self.train_files[i] and not (self.val_files and self.val_files[i]):
                raise UsageError(f"class folder {_class(name)} has no images "
                                 f"({', '.join(IMAGE_EXTENSIONS)})")
        self.notes += self._split_notes()

    def live_notes(self) -> list[str]:
        """Warnings added after studies were fingerprinted, worked out each time the data is
        loaded: neither hashed (a study on a folder they speak of resumes on the same files)
        nor cached (a loose image added later is said; a cache from before says them too)."""
        loose = _loose_images(self.root, "the data folder") if self.presplit else []
        return loose + self._shared_files()

    def _shared_files(self) -> list[str]:
        """A warning for image files reached by two paths (a link, a hard link, a store of
        files by content such as Hugging Face's cache): in two classes, one image has two
        labels; in train/ and val/, a validation image is trained on; twice in one class, it
        counts twice (and the automatic split can put it on both sides). Found by device and
        inode; the files are used as they are, so the data is what it was and what a copy that
        turned the links into files holds."""
        first: dict[tuple[int, int], tuple[str, int, Path]] = {}
        found: dict[str, list[str]] = {"two classes": [], "train/ and val/": [], "one class": []}
        for split, groups in (("train/", self.train_files), ("val/", self.val_files or [])):
            for c, files in enumerate(groups):
                for path in files:
                    try:
                        st = path.stat()
                    except OSError:  # gone since the walk: decoding names it unreadable
                        continue
                    where, label, seen = first.setdefault((st.st_dev, st.st_ino), (split, c, path))
                    if seen != path:
                        kind = "two classes" if label != c else "train/ and val/" if where != split else "one class"
                        found[kind].append(f"{_quote(path.relative_to(self.root).as_posix())} = "
                                           f"{_quote(seen.relative_to(self.root).as_posix())}")
        effects = {"two classes": "one image, two labels", "train/ and val/": "validated on what is trained on",
                   "one class": "counted twice" + ("" if self.presplit else ", and the automatic split can validate on it")}
        return [f"{len(pairs)} image file(s) are also another path's file (a link or a hard link) in {kind}, "
                f"{effects[kind]}: {_some(pairs)}" for kind, pairs in found.items() if pairs]

    def _split_notes(self) -> list[str]:
        """Classes that one split will lack; an error when no class can give a val image."""
        if self.val_files is None:
            if all(len(files) < 2 for files in self.train_files):
                raise UsageError(f"no class folder in {self.source} has the 2 images needed to "
                                 "hold one out for validation; add images (at least 2 per "
                                 "class) or give train/ and val/ sub-folders")
            single = [c for c, files in zip(self.classes, self.train_files) if len(files) == 1]
            return [(f"class(es) {_classes(single)} have 1 image, so none is held out for "
                     "validation: top-1 leaves them out; add images")] if single else []
        notes = []
        for folder, groups, effect in (
            ("train/", self.train_files, "training never sees them"),
            ("val/", self.val_files, "top-1 leaves them out"),
        ):
            lacking = [c for c, files in zip(self.classes, groups) if not files]
            if lacking:
                notes.append(f"{folder} has no images of {len(lacking)} of {len(self.classes)} "
                             f"classes ({_classes(lacking)}): {effect}; add images to "
                             f"{folder}<class>/")
        return notes

    def _files(self) -> list[Path]:
        """Every image file of both splits, before any is decoded."""
        return [f for group in self.train_files + (self.val_files or []) for f in group]

    def local_stamp(self) -> str:
        return local_stamp(self._files())

    @functools.cached_property
    def stamps(self) -> list[list]:
        return file_stamps(self.root, self._files())

    def fingerprint(self) -> str:
        return digest({
            "source": "folder", "decoder": DECODER_VERSION, "max_pixels": max_pixels(),
            "files": self.stamps, "notes": self.notes,
            "storage": self.storage, "train": self.n_train, "val": self.n_val, "seed": self.seed,
            "val_fraction": None if self.presplit else self.val_fraction,
            # Under a cap, an unreadable file is replaced by the next of its class (scaler 0.2
            # took fewer images instead): capped studies of either rule never mix.
            **({"selection": 2} if self.n_train is not None or self.n_val is not None else {}),
        })

    def _select(self) -> list[tuple[list[list[Path]], list[int]]]:
        """For the training and the validation split: each class's files in a seeded order, and
        how many of them the split takes (all, or the cap shared out by class)."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 0xF01D])))
        shuffle = lambda files: [files[j] for j in rng.permutation(len(files))]  # noqa: E731
        if self.presplit:
            train = [shuffle(f) for f in self.train_files]
            val = [shuffle(f) for f in self.val_files or []]
        else:
            train, val = [], []
            for files in self.train_files:
                files = shuffle(files)
                k = round(len(files) * self.val_fraction)
                k = min(max(k, 1), len(files) - 1) if len(files) >= 2 else 0
                val.append(files[:k])
                train.append(files[k:])
        return [(groups, [len(g) for g in stratified_take(groups, cap)])
                for groups, cap in ((train, self.n_train), (val, self.n_val))]

    def train_images(self) -> int:
        """Training images the folder has in all (before a cap), counted without decoding."""
        return sum(len(files) for files in self._select()[0][0])

    def stored_images(self) -> tuple[int, int]:
        # Files that turn out unreadable count too: only decoding finds them.
        return sum(sum(wanted) for _, wanted in self._select()), self.storage

    def load(self) -> Loaded:
        splits = self._select()
        # Each class's first `wanted` files of a split; a file that cannot be decoded is
        # replaced by the class's next one, so a cap counts readable images.
        taken = [[list(files[:n]) for files, n in zip(groups, wanted)] for groups, wanted in splits]
        decoded: dict[Path, np.ndarray | str] = {}
        workers = max(1, min(8, os.cpu_count() or 1))
        with warnings.catch_warnings(), ThreadPoolExecutor(workers) as pool:
            # Pillow warns about odd files (DecompressionBombWarning, corrupt EXIF) straight onto
            # the terminal; decode_image refuses the too-large ones, the rest decode fine.
            warnings.filterwarnings("ignore", module=r"PIL\.")
            while todo := [f for split in taken for files in split for f in files if f not in decoded]:
                decoded.update(zip(todo, pool.map(lambda f: _decode(f, self.storage), todo)))  # Pillow releases the GIL
                for (groups, wanted), split in zip(splits, taken):
                    for files, group, n in zip(split, groups, wanted):
                        short = n - sum(not isinstance(decoded[f], str) for f in files)
                        files += group[len(files):len(files) + short]
        readable = [0] * len(self.classes)
        tried = [0] * len(self.classes)
        first_skip: dict[int, tuple[Path, str]] = {}
        parts, skips = [], []
        for split in taken:
            paths, labels, skipped = [], [], []
            for c, files in enumerate(split):
                for path in files:
                    tried[c] += 1
                    result = decoded[path]
                    if isinstance(result, str):
                        skipped.append((path, result))
                        first_skip[c] = min(first_skip.get(c, (path, result)), (path, result))
                    else:
                        paths.append(path)
                        labels.append(c)
                        readable[c] += 1
            parts.append((paths, labels))
            skips.append(skipped)
        for c, name in enumerate(self.classes):
            if tried[c] and not readable[c]:
                raise UsageError(f"class folder {_class(name)} has no readable images "
                                 f"({self._named([first_skip[c]])})")
        for (paths, _), skipped, which, folder in zip(parts, skips, ("training", "validation"),
                                                     ("train/", "val/")):
            if paths:
                continue
            if not skipped:  # only with train/ and val/ (see _split_notes)
                raise UsageError(f"the {which} split of {self.source} is empty: {folder} has "
                                 f"no images; add images to {folder}<class>/")
            example = self._named(sorted(skipped), 1)
            raise UsageError(f"the {which} split of {self.source} is empty: none of its "
                             f"{len(skipped)} image(s) is readable ({example})")
        train, val = (_to_split(decoded, *part) for part in parts)
        skipped = sorted(skips[0] + skips[1])
        notes = list(self.notes)
        validated = set(parts[1][1])
        unread = [name for c, name in enumerate(self.classes) if taken[1][c] and c not in validated]
        if unread:  # the layout's notes named the classes val lacks; these lost theirs to decoding
            notes.append(f"class(es) {_some([_class(n) for n in unread])} have no readable validation image (their held-out files are "
                         "unreadable): top-1 leaves them out")
        if skipped:
            notes.append(f"skipped {len(skipped)} unreadable image file(s): "
                         f"{self._named(skipped)}")
        return Loaded(self.classes, train, val, len(skipped), len(train) + len(val),
                      tuple(notes))

    def _named(self, skipped: list[tuple[Path, str]], limit: int = _NAMED) -> str:
        """The first `limit` skipped files, by name (relative to the data folder) and reason."""
        shown = "; ".join(f"{_quote(p.relative_to(self.root).as_posix())}: {reason}"
                          for p, reason in skipped[:limit])
        more = len(skipped) - limit
        return shown + (f"; and {more} more" if more > 0 else "")


def _to_split(decoded: dict[Path, np.ndarray | str], paths: list[Path], labels: list[int]) -> ImageSplit:
    """The split of these decoded images, each moved into one preallocated tensor and dropped
    from `decoded` as it goes: the folder's pixels are held about once (stacking, then
    permuting, held them 2.6 times over, past what the memory check allows for)."""
    size = decoded[paths[0]].shape[0]  # type: ignore[union-attr]
    images = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    pixels = images.numpy()  # shares the memory; writes copy (Pillow's arrays are read-only)
    for i, path in enumerate(paths):
        pixels[i] = decoded.pop(path).transpose(2, 0, 1)  # type: ignore[union-attr]
    return ImageSplit(images, torch.tensor(labels, dtype=torch.int64))


def _decode(path: Path, size: int) -> np.ndarray | str:
    """The decoded image, or the reason it cannot be used."""
    try:
        return decode_image(path, size)
    except Unreadable as e:
        return str(e)


def split_by_folders(root: Path) -> bool:
    """Whether `root` is an image folder split by its own train/ and val/ (UsageError for a
    layout that is neither that nor class folders alone)."""
    return root.is_dir() and _layout(root)[1] is not None


def _layout(root: Path) -> tuple[Path, Path | None]:
    """(the folder of training class folders, the folder of validation ones or None). One of
    train/ and val/ beside other class folders is a class (PASCAL VOC has one named train)."""
    train, val = root / "train", root / "val"
    splits = ("train", "val", "test", "valid", "validation")
    if train.is_dir() and not val.exists() and not any(d.name not in splits for d in _class_dirs(root)):
        for name in ("valid", "validation"):
            if (root / name).is_dir():  # read as classes, they would train a classifier of split names
                raise UsageError(f"data folder {root} has train/ and {name}/: name the validation folder val/ "
                                 f"(scaler splits by train/ and val/), or give only class sub-folders")
    if not (train.exists() or val.exists()):
        return root, None
    others = [d for d in _class_dirs(root) if d.name not in ("train", "val", "test")]
    if others and not (train.is_dir() and val.is_dir()):
        return root, None
    for folder in (train, val):
        if not folder.is_dir():
            what = "is a file" if folder.exists() else "is missing"
            raise UsageError(f"in data folder {root}, {folder.name}/ {what}; give both train/ "
                             "and val/ folders (one sub-folder per class in each) or only "
                             "class sub-folders")
    return train, val


def _hidden(name: str) -> bool:
    """Dot entries (.DS_Store, ._x.jpg, .ipynb_checkpoints) and macOS zip resource forks."""
    return name.startswith(".") or name == "__MACOSX"


def _is_image(name: str) -> bool:
    return not _hidden(name) and name.lower().endswith(IMAGE_EXTENSIONS)


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as e:
        raise UsageError(f"cannot read data folder {folder}: {e.strerror or e}") from None


def _class_dirs(folder: Path) -> list[Path]:
    """The class folders in `folder` (hidden ones ignored), sorted by name."""
    return [p for p in _entries(folder) if p.is_dir() and not _hidden(p.name)]


class _ClassWalk:
    """Image files under class folders, recursively, sorted, and what the walk leaves out (for
    one warning each). Linked folders are followed, each visited once per class (a link loop
    would repeat every image), but not one that holds the data folder (a link back up) or lies
    in another class's folder (its images would be labelled twice), nor one that holds other
    class folders (val/ linked from train/a). Only regular files count (a
    FIFO named x.png would block the decoder); links that lead nowhere are named."""

    def __init__(self, root: Path, class_dirs: list[Path]) -> None:
        self.root, self.real_root = root, root.resolve()
        self.class_dirs = [d.resolve() for d in class_dirs]
        self.dangling: list[Path] = []
        self.refused: list[Path] = []
        self.to_classes: list[Path] = []  # links to a folder of class folders (val/ from train/a)

    def files(self, folder: Path) -> list[Path]:
        own = folder.resolve()
        files, seen = [], set()
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                dirnames.clear()
                continue
            seen.add((st.st_dev, st.st_ino))
            kept = []
            for name in sorted(d for d in dirnames if not _hidden(d)):
                path = Path(dirpath) / name
                if path.is_symlink() and (refused := self._refused(path.resolve(), own)) is not None:
                    refused.append(path)
                else:
                    kept.append(name)
            dirnames[:] = kept
            for name in filenames:
                path = Path(dirpath) / name
                if _is_image(name) and path.is_file():
                    files.append(path)
                elif _is_image(name) and path.is_symlink() and not path.exists():
                    self.dangling.append(path)
        return sorted(files)

    def _refused(self, target: Path, own: Path) -> list[Path] | None:
        """The list a linked folder leading to `target` is named in where it is not followed
        (a link back up, or into another class's folder; a link to a folder holding class
        folders, such as val/ from train/a), or None."""
        others = [c for c in self.class_dirs if c != own]
        if self.real_root.is_relative_to(target) or any(target.is_relative_to(c) for c in others):
            return self.refused
        if target.is_relative_to(own):  # its own folder or one inside it: walked once, as before
            return None
        return self.to_classes if any(c.is_relative_to(target) for c in others) else None

    def notes(self) -> list[str]:
        named = lambda paths: _some([_quote(p.relative_to(self.root).as_posix()) for p in sorted(paths)])  # noqa: E731
        notes = []
        if self.refused:
            notes.append(f"{len(self.refused)} linked folder(s) in class folders lead back up to the data folder or "
                         f"into another class's folder and are not followed: {named(self.refused)}")
        if self.to_classes:
            notes.append(f"{len(self.to_classes)} linked folder(s) in class folders lead to a folder of class folders "
                         f"and are not followed: {named(self.to_classes)}")
        if self.dangling:
            notes.append(f"{len(self.dangling)} image link(s) lead nowhere and are not used: {named(self.dangling)}")
        return notes


def _dangling_classes(folder: Path) -> list[str]:
    """A warning for links among the class folders that lead nowhere (an unmounted disk): their
    classes are left out."""
    names = [p.name for p in _entries(folder) if p.is_symlink() and not p.exists() and not _hidden(p.name)]
    if not names:
        return []
    return [f"{len(names)} class folder link(s) lead nowhere, so their classes are left out: {_classes(names)}"]


def _loose_images(folder: Path, where: str) -> list[str]:
    """A warning for image files directly in a folder of class folders (they are not used)."""
    names = [p.name for p in _entries(folder) if _is_image(p.name) and p.is_file()]
    if not names:
        return []
    return [(f"{len(names)} image file(s) directly in {where} are not in a class folder and "
             f"are not used: {_some([_quote(n) for n in names])}")]


def _unused_folders(root: Path) -> list[str]:
    """A warning for folders beside train/ and val/ (test/, say): they are not used."""
    names = [p.name + "/" for p in _entries(root)
             if p.is_dir() and not _hidden(p.name) and p.name not in ("train", "val")]
    if not names:
        return []
    return [(f"folder(s) {_some([_quote(n) for n in names])} beside train/ and val/ are not "
             "used; only train/ and val/ are")]


def _quote(name: str) -> str:
    """A file or class name fit for a one-line message."""
    return name if name.isprintable() else ascii(name)


def _classes(names: list[str] | tuple[str, ...], limit: int = _NAMED) -> str:
    """Class names in quotes, as the fingerprinted notes have always written them."""
    return _some([f"'{_quote(n)}'" for n in names], limit)


def _class(name: str) -> str:
    """A class name in quotes for an error or an unhashed note (ascii()'s own quotes where it
    is not printable: `_classes` doubles them, kept as notes are hashed)."""
    return f"'{name}'" if name.isprintable() else ascii(name)


def _some(items: list[str], limit: int = _NAMED) -> str:
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" and {more} more" if more > 0 else "")
