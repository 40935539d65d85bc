"""Image-classification data for proxy training: decoded once into uint8 tensors, augmented in
batches on the target device.

`load_dataset(source)` picks one of three sources: ``synthetic`` (default; seeded, rendered,
no download), a folder in ImageFolder layout (one sub-folder per class, optionally under
``train/`` and ``val/``), or ``cifar10:PATH`` (the python CIFAR-10 batches). Every image is
decoded once into a uint8 [N, 3, S, S] tensor at the storage resolution S, memoised in the
process and, with `cache_dir`, saved to ``<cache_dir>/<fingerprint>.pt``; `train_batches` /
`eval_batches` crop, resize, flip and normalise whole batches on the device.

Modules: `options` (DataOptions: which data a study trains on), `dataset` (Dataset,
load_dataset), `split` (ImageSplit), `source` (what a source provides), `cache`, `synthetic`,
`folder` and `images` (decoding files), `cifar`, `batches`.

The names below are loaded on first use (as `scaler`'s are), so that the command line can
read `DataOptions`' defaults without importing torch.
"""

from __future__ import annotations

from scaler.lazy import lazy_exports

_EXPORTS = {
    "EVAL_CROP": "scaler.data.batches",
    "IMAGENET_MEAN": "scaler.data.batches",
    "IMAGENET_STD": "scaler.data.batches",
    "eval_batches": "scaler.data.batches",
    "train_batches": "scaler.data.batches",
    "CIFAR_FILES": "scaler.data.cifar",
    "CIFAR_RESOLUTION": "scaler.data.cifar",
    "Dataset": "scaler.data.dataset",
    "MAX_IMAGES": "scaler.data.dataset",
    "MIN_TRAIN_IMAGES": "scaler.data.dataset",
    "canonical_source": "scaler.data.dataset",
    "check_image_counts": "scaler.data.dataset",
    "clear_memo": "scaler.data.dataset",
    "count_classes": "scaler.data.dataset",
    "count_train_images": "scaler.data.dataset",
    "has_own_split": "scaler.data.dataset",
    "load_dataset": "scaler.data.dataset",
    "take_train": "scaler.data.dataset",
    "IMAGE_EXTENSIONS": "scaler.data.folder",
    "DataOptions": "scaler.data.options",
    "FORMAT_VERSION": "scaler.data.source",
    "ImageSplit": "scaler.data.split",
    "GLYPH_SETS": "scaler.data.synthetic",
    "LAYOUTS": "scaler.data.synthetic",
    "SHAPES": "scaler.data.synthetic",
    "SYNTHETIC_CLASSES": "scaler.data.synthetic",
    "SYNTHETIC_TRAIN": "scaler.data.synthetic",
    "SYNTHETIC_VAL": "scaler.data.synthetic",
    "SyntheticRenderer": "scaler.data.synthetic",
    "TEXTURES": "scaler.data.synthetic",
    "render_synthetic": "scaler.data.synthetic",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
