"""`load_dataset`: the source a string names, its data from the in-process memo, the disk cache
or a fresh decode (in that order), as a `Dataset`."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import torch

from scaler.data.cache import read_cache, write_cache
from scaler.data.cifar import CIFAR_CLASSES, CIFAR_IMAGES, CIFAR_PREFIX, CifarSource
from scaler.data.folder import FolderSource, split_by_folders
from scaler.data.source import Source, digest
from scaler.data.split import ImageSplit, stratified_take
from scaler.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_TRAIN, SYNTHETIC_VAL, SyntheticSource
from scaler.errors import UsageError, attributed_to, check_int
from scaler.files import read_from, tidy_path
from scaler.memory import check_images_fit
from scaler.scaling import MAX_RESOLUTION, MIN_TRAIN_RESOLUTION

SYNTHETIC_SOURCE = "synthetic"  # the built-in data
_SOURCES = "use 'synthetic', 'cifar10:PATH' or a folder with one sub-folder per class"
_MEMO_SIZE = 4
_memo: OrderedDict[str, Dataset] = OrderedDict()


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded data set. `decoded` counts images decoded or rendered by the call that returned
    it (0 when it came from the in-process memo or the disk cache). `skipped` counts image
    files that could not be used; `warnings` says which and anything else the user should
    know about the data (one line each, ready to print). `files` are the stamps of the files it
    was decoded from (`Source.stamps`; empty for rendered data)."""

    source: str
    classes: tuple[str, ...]
    train: ImageSplit
    val: ImageSplit
    fingerprint: str
    skipped: int
    decoded: int
    warnings: tuple[str, ...] = ()
    files: tuple[tuple[str, int, int], ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class DataIdentity(NamedTuple):
    """What a data set is before any image is decoded: the source as given, its fingerprint and
    the stamps of its files (as `Dataset` has them). What `load_dataset`'s `before_decoding`
    is given, so that a caller can refuse other data before the work of decoding it."""

    source: str
    fingerprint: str
    files: tuple[tuple[str, int, int], ...]


MAX_IMAGES = 10**8  # the most training or validation images a data set takes
MIN_TRAIN_IMAGES = 2  # the fewest a training takes: a batch of one gives BatchNorm no statistics


def check_image_counts(train_images: int | None, val_images: int | None) -> None:
    """UsageError unless each count given is one a data set can take (training needs
    MIN_TRAIN_IMAGES, validation one), before anything is loaded or a study is created."""
    for name, value, low in (("train_images", train_images, MIN_TRAIN_IMAGES), ("val_images", val_images, 1)):
        if value is not None:
            check_int(name, value, low, MAX_IMAGES)


def class_coverage(classes: tuple[str, ...], train: ImageSplit, val: ImageSplit) -> tuple[str, ...]:
    """A warning for the classes the training split holds no image of (fewer images than
    classes, a cap that left a small class out, or its files unreadable): no network can learn
    them, which caps top-1 at the share of validation images of the other classes. (A class
    missing from validation is the folder source's to name, with its own advice.)"""
    count = len(classes)
    in_train = torch.bincount(train.labels, minlength=count)[:count]
    empty = [name for name, n in zip(classes, in_train.tolist()) if n == 0]
    if not empty:
        return ()
    named = ", ".join(empty[:3]) + (f" and {len(empty) - 3} more" if len(empty) > 3 else "")
    in_val = torch.bincount(val.labels, minlength=count)[:count]
    ceiling = float(in_val[in_train > 0].sum()) / max(1, len(val))
    cap = f"so top-1 cannot exceed {ceiling:.1%}" if ceiling < 1 else "and validation has none of them either"
    return (f"{len(empty)} of the {count} classes ({named}) have no training image among the {len(train)}: "
            f"no network can learn them, {cap}; more training images would cover them",)


def load_dataset(
    source: str | os.PathLike[str] = SYNTHETIC_SOURCE,
    *,
    storage_resolution: int = 128,
    train_images: int | None = None,
    val_images: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    native_resolution: int = 256,
    cache_dir: Path | None = None,
    before_decoding: Callable[[DataIdentity], None] | None = None,
) -> Dataset:
    """Load (decode once, or fetch from the memo / disk cache) the data set `source` names.

    `train_images` / `val_images` cap the split sizes (synthetic: the sizes, default 1800 / 1000);
    capping is stratified per class and seeded. `val_fraction` applies to folders without
    train/ and val/ sub-folders (CIFAR-10 validates on its test_batch). `native_resolution` is
    the synthetic render size. CIFAR-10 is stored at min(32, storage_resolution).
    `before_decoding` is called with the data's `DataIdentity` once the source is scanned,
    before anything is decoded or read from a cache (whatever it raises goes on).
    """
    check_int("storage_resolution", storage_resolution, MIN_TRAIN_RESOLUTION, MAX_RESOLUTION)
    check_int("native_resolution", native_resolution, 32, 4096)
    check_image_counts(train_images, val_images)
    if not (isinstance(val_fraction, (int, float)) and 0.0 < val_fraction < 1.0):
        raise UsageError(f"val fraction = {val_fraction!r} is not allowed; it must be in (0, 1)", param="val_fraction")
    check_int("seed", seed, 0)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise UsageError(f"data source {source!r} is not allowed; {_SOURCES}", param="data")
    with attributed_to("data"):  # what is wrong with the source itself (missing, unreadable, its layout)
        loader = _open_source(source, storage_resolution, train_images, val_images, val_fraction, seed, native_resolution)
    identity = _identity(source, loader)
    if before_decoding is not None:  # not the source's fault: outside `attributed_to`
        before_decoding(identity)
    with attributed_to("data"):  # an unreadable class, an empty split
        return _load(identity, loader, cache_dir)


def _identity(source: str, loader: Source) -> DataIdentity:
    return DataIdentity(source, loader.fingerprint(), tuple(map(tuple, loader.stamps)))


def _load(identity: DataIdentity, loader: Source, cache_dir: Path | None) -> Dataset:
    """`load_dataset` once its arguments are checked and its source opened."""
    source, fingerprint, stamp = identity.source, identity.fingerprint, loader.local_stamp()
    key = f"{fingerprint}:{stamp}"  # a memo of the files as they are now
    live = tuple(loader.live_notes()) if isinstance(loader, FolderSource) else ()  # neither memoised nor cached
    if key in _memo:
        _memo.move_to_end(key)
        return replace(_memo[key], source=source, decoded=0, warnings=_memo[key].warnings + live)

    count, resolution = loader.stored_images()
    check_images_fit(count, resolution, source)  # the images, however they come
    cache_file = None
    loaded = None
    if cache_dir is not None:
        cache_file = Path(cache_dir).expanduser() / f"{fingerprint}.pt"
        loaded = read_cache(cache_file, stamp)
    if loaded is None:
        if isinstance(loader, FolderSource):  # the decoded images, then the tensor they move into: 2.0x at the peak
            check_images_fit(count, resolution, source, copies=2)
        loaded = loader.load()
        if cache_file is not None:
            write_cache(cache_file, loaded, stamp)
    dataset = Dataset(source, loaded.classes, loaded.train, loaded.val, fingerprint, loaded.skipped,
                      loaded.decoded, loaded.warnings + class_coverage(loaded.classes, loaded.train, loaded.val),
                      identity.files)
    _remember(key, dataset)
    return replace(dataset, warnings=dataset.warnings + live)


def take_train(dataset: Dataset, count: int) -> Dataset:
    """The data set with only `count` of its training images (validation unchanged): the first
    images of each class in split order, as many per class as `stratified_take` gives. On the
    synthetic set (labels cycle through the classes) that is exactly the first `count` images,
    which are what loading it with `train_images=count` renders. The whole data set when it
    has no more than `count` training images. Its warnings say which classes the subset has no
    training image of (`class_coverage`), in place of the whole set's."""
    check_int("count", count, 1, MAX_IMAGES)
    if count >= len(dataset.train):
        return dataset
    labels = dataset.train.labels
    groups = [torch.nonzero(labels == c).flatten().tolist() for c in range(int(labels.max()) + 1)]
    keep = torch.tensor(sorted(i for group in stratified_take(groups, count) for i in group), dtype=torch.int64)
    train = ImageSplit(dataset.train.images[keep].contiguous(), labels[keep].clone())
    fingerprint = digest({"of": dataset.fingerprint, "train": count})
    whole = class_coverage(dataset.classes, dataset.train, dataset.val)
    warnings = tuple(w for w in dataset.warnings if w not in whole) + class_coverage(dataset.classes, train, dataset.val)
    return replace(dataset, train=train, fingerprint=fingerprint, decoded=0, warnings=warnings)


def clear_memo() -> None:
    """Forget the data sets memoised in this process (the disk cache is left as it is)."""
    _memo.clear()


def _open_source(source: str, storage: int, n_train: int | None, n_val: int | None,
                 val_fraction: float, seed: int, native: int) -> Source:
    """The source `source` names; input errors (a missing path, a bad layout) raise here."""
    if not source.strip():
        raise UsageError(f"data source {source!r} is empty; {_SOURCES}")
    if source == SYNTHETIC_SOURCE:
        return SyntheticSource(storage, native,
                               SYNTHETIC_TRAIN if n_train is None else n_train,
                               SYNTHETIC_VAL if n_val is None else n_val, seed)
    if source.startswith(CIFAR_PREFIX):
        return CifarSource(source, storage, n_train, n_val, seed)
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageError(f"data source '{source}' does not exist{read_from(path)}; {_SOURCES}")
    if not path.is_dir():
        raise UsageError(f"data source '{source}' is a file; {_SOURCES}")
    return FolderSource(source, path, storage, n_train, n_val, val_fraction, seed)


def canonical_source(source: str) -> str:
    """One spelling of a data source, so a study is found by the data it trains on: a
    folder's path tidied (`tidy_path`: 'imgs/' and './imgs' are 'imgs'), cifar10:PATH's likewise,
    'synthetic' as it is (a folder of that name keeps a './'). An empty source stays empty
    (its error names it as given)."""
    if source.startswith(CIFAR_PREFIX) and source[len(CIFAR_PREFIX):]:
        return CIFAR_PREFIX + tidy_path(source[len(CIFAR_PREFIX):])
    if source == SYNTHETIC_SOURCE or source.startswith(CIFAR_PREFIX) or not source.strip():
        return source
    path = tidy_path(source)
    # a folder called 'synthetic' ('synthetic/', './synthetic') stays a folder, not the built-in data
    return "./" + path if path == SYNTHETIC_SOURCE or path.startswith(CIFAR_PREFIX) else path


def has_own_split(source: str) -> bool:
    """Whether the source brings its validation images (synthetic, CIFAR-10's test batch, an
    image folder with its own train/ and val/), so a validation fraction does not apply to it.
    A folder whose layout is refused is not judged here: loading it names the fault."""
    if source == SYNTHETIC_SOURCE or source.startswith(CIFAR_PREFIX):
        return True
    try:
        return split_by_folders(Path(source).expanduser())
    except (UsageError, OSError):
        return False


def count_classes(source: str, val_fraction: float = 0.2) -> int:
    """How many classes the data source `source` has, checking its layout without decoding any
    image (UsageError for a bad source): what a proxy's classifier must be built for."""
    if source == SYNTHETIC_SOURCE:
        return len(SYNTHETIC_CLASSES)
    loader = _open_source(source, 32, None, None, val_fraction, 0, 32)
    if isinstance(loader, CifarSource):
        return CIFAR_CLASSES
    return len(loader.classes)


def count_train_images(source: str, val_fraction: float = 0.2) -> int | None:
    """How many training images the data source has in all, counted without decoding (None
    for the synthetic set, which renders as many as asked): a cap at or above it takes all."""
    if source == SYNTHETIC_SOURCE:
        return None
    loader = _open_source(source, 32, None, None, val_fraction, 0, 32)
    return CIFAR_IMAGES[0] if isinstance(loader, CifarSource) else loader.train_images()


def source_files(source: str, val_fraction: float = 0.2) -> tuple[tuple[str, int, int], ...]:
    """The stamps of the files the data source `source` is decoded from (`Source.stamps`),
    found without decoding any (empty for the synthetic set): what `Dataset.files` will hold."""
    if source == SYNTHETIC_SOURCE:
        return ()
    return _identity(source, _open_source(source, 32, None, None, val_fraction, 0, 32)).files


def _remember(key: str, dataset: Dataset) -> None:
    _memo[key] = dataset
    _memo.move_to_end(key)
    while len(_memo) > _MEMO_SIZE:
        _memo.popitem(last=False)
