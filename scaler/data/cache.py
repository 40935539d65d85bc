"""The on-disk tensor cache: one ``<fingerprint>.pt`` file per decoded data set, written
atomically; a file that is unreadable or of another format is ignored (and later overwritten)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from scaler.data.source import FORMAT_VERSION, Loaded
from scaler.data.split import ImageSplit
from scaler.errors import RunError
from scaler.files import atomic_writer, remove_stale_temporaries


def read_cache(path: Path, stamp: str) -> Loaded | None:
    """The data set saved at `path` (with decoded = 0), or None when there is no usable file:
    none, another format, or decoded from another copy of the files (`stamp`, the source's
    `local_stamp`: replaced files, or another folder with the same names, sizes and times)."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("format") != FORMAT_VERSION or blob.get("local_stamp", "") != stamp:
            return None
        return Loaded(
            classes=tuple(blob["classes"]),
            train=ImageSplit(blob["train_images"].contiguous(), blob["train_labels"]),
            val=ImageSplit(blob["val_images"].contiguous(), blob["val_labels"]),
            skipped=int(blob["skipped"]),
            decoded=0,
            # files written before warnings existed hold none (synthetic and CIFAR-10 have none)
            warnings=tuple(str(w) for w in blob.get("warnings", ())),
        )
    except Exception:  # a truncated or foreign file: decode again and overwrite it
        return None


# What atomic writes of cache files (".<fingerprint>.pt.XXXX.tmp") leave while they run, or when killed.
CACHE_TEMPORARIES = "." + "[0-9a-f]" * 32 + ".pt.*.tmp"


def write_cache(path: Path, loaded: Loaded, stamp: str) -> None:
    """Save atomically (`atomic_writer`: flushed to disk before the rename, readable by whoever
    may read a new file, so a --cache-dir can be shared), first removing what killed writers
    left in the folder."""
    blob = {
        "format": FORMAT_VERSION,
        "local_stamp": stamp,
        "classes": list(loaded.classes),
        "train_images": loaded.train.images,
        "train_labels": loaded.train.labels,
        "val_images": loaded.val.images,
        "val_labels": loaded.val.labels,
        "skipped": loaded.skipped,
        "warnings": list(loaded.warnings),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a killed writer's, gigabytes for a large folder: only this cache's own (the folder may be
        # /tmp or ~/.cache), and after an hour (flushing gigabytes to a slow disk takes a while)
        remove_stale_temporaries(path.parent, CACHE_TEMPORARIES, seconds=3600)
        with atomic_writer(path) as f:
            torch.save(blob, f)
    except OSError as e:
        raise RunError(f"cannot write the data cache {path}: {e.strerror or e}") from None
    except RuntimeError as e:  # torch.save's own writer fails so (a full disk) where Python's raises OSError
        full = shutil.disk_usage(path.parent).free < sum(t.nbytes for t in blob.values() if isinstance(t, torch.Tensor))
        raise RunError(f"cannot write the data cache {path}: "
                       + ("no space left on its disk" if full else str(e).splitlines()[0][:300])) from None
