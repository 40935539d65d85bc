"""CIFAR-10 from the python-pickle batches (``cifar-10-batches-py``) in a local folder:
data_batch_1..5 train, test_batch validates; stored at min(32, storage resolution)."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from scaler.data.source import Loaded, digest, file_stamps, local_stamp
from scaler.data.split import ImageSplit, resize_uint8, stratified_take
from scaler.errors import UsageError
from scaler.files import read_from

CIFAR_PREFIX = "cifar10:"  # a source "cifar10:PATH" names the extracted batches
CIFAR_RESOLUTION = 32
CIFAR_CLASSES = 10
CIFAR_IMAGES = 50_000, 10_000  # the official training and test batches
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
_NEEDS = f"cifar10:PATH needs the extracted folder that holds {', '.join(CIFAR_FILES)}"


class CifarSource:
    """The source ``cifar10:PATH``; checks the folder and its files when constructed."""

    def __init__(self, source: str, storage: int, n_train: int | None, n_val: int | None,
                 seed: int) -> None:
        path = source[len(CIFAR_PREFIX):]
        if not path:
            raise UsageError(f"data source 'cifar10:' names no folder; {_NEEDS}")
        self.root = Path(path).expanduser()
        if not self.root.exists():
            raise UsageError(f"CIFAR-10 folder {self.root} does not exist{read_from(self.root)}; {_NEEDS}")
        if not self.root.is_dir():
            raise UsageError(f"CIFAR-10 path {self.root} is a file, not a folder; {_NEEDS}")
        for name in CIFAR_FILES:
            if not (self.root / name).is_file():
                raise UsageError(f"CIFAR-10 file {self.root / name} is missing; {_NEEDS}")
        self.storage = min(CIFAR_RESOLUTION, storage)
        self.n_train, self.n_val, self.seed = n_train, n_val, seed

    def local_stamp(self) -> str:
        return local_stamp([self.root / name for name in CIFAR_FILES])

    @property
    def stamps(self) -> list[list]:
        return file_stamps(self.root, [self.root / name for name in CIFAR_FILES])

    def fingerprint(self) -> str:
        return digest({"source": "cifar10", "files": self.stamps,
                       "storage": self.storage, "train": self.n_train, "val": self.n_val,
                       "seed": self.seed})

    def _unpickle(self, name: str) -> dict:
        # Pickles can run code: only point cifar10: at files you trust (the official batches).
        try:
            with open(self.root / name, "rb") as f:
                blob = pickle.load(f, encoding="bytes")
            if not isinstance(blob, dict):
                raise ValueError("not a dict")
            return blob
        except Exception as e:
            raise UsageError(f"CIFAR-10 file {self.root / name} is not a python CIFAR-10 batch "
                             f"({type(e).__name__})") from None

    def _batch(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        data, labels = [], []
        for name in names:
            blob = self._unpickle(name)
            d = np.asarray(blob.get(b"data"))
            try:
                lab = np.asarray(blob.get(b"labels", blob.get(b"fine_labels")), dtype=np.int64)
            except (TypeError, ValueError):  # none, or not a list of integers
                lab = np.empty(0)
            if d.dtype != np.uint8 or d.ndim != 2 or d.shape[1] != 3 * 32 * 32 \
                    or lab.shape != (d.shape[0],):
                raise UsageError(f"CIFAR-10 file {self.root / name} is not a python CIFAR-10 "
                                 "batch (needs b'data' uint8 [N, 3072] and b'labels' [N])")
            data.append(d)
            labels.append(lab)
        return np.concatenate(data), np.concatenate(labels)

    def _split(self, data: np.ndarray, labels: np.ndarray, cap: int | None, num_classes: int,
               rng: np.random.Generator) -> ImageSplit:
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise UsageError(f"CIFAR-10 labels must be in 0..{num_classes - 1}; found "
                             f"{int(labels.min())}..{int(labels.max())}")
        groups = [rng.permutation(np.flatnonzero(labels == c)).tolist()
                  for c in range(num_classes)]
        keep = np.sort(np.array([i for g in stratified_take(groups, cap) for i in g],
                                dtype=np.int64))
        images = torch.from_numpy(data[keep].reshape(-1, 3, 32, 32))
        return ImageSplit(resize_uint8(images, self.storage),
                          torch.from_numpy(labels[keep].copy()))

    def stored_images(self) -> tuple[int, int]:
        count = sum(min(cap, count) if cap is not None else count
                    for cap, count in zip((self.n_train, self.n_val), CIFAR_IMAGES))
        return count, self.storage

    def load(self) -> Loaded:
        meta = self._unpickle("batches.meta")
        names = meta.get(b"label_names")
        if not names:
            raise UsageError(f"CIFAR-10 file {self.root / 'batches.meta'} has no b'label_names'")
        classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        if len(classes) != CIFAR_CLASSES:  # what a study's networks are built for, before loading
            raise UsageError(f"CIFAR-10 file {self.root / 'batches.meta'} names {len(classes)} classes; CIFAR-10 has {CIFAR_CLASSES}")
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 0xC1FA])))
        train = self._split(*self._batch(CIFAR_FILES[:5]), self.n_train, len(classes), rng)
        val = self._split(*self._batch(["test_batch"]), self.n_val, len(classes), rng)
        return Loaded(classes, train, val, 0, len(train) + len(val))
