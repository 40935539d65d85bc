"""Image-classification data for proxy training: decoded once into uint8 tensors, augmented in
batches on the target device.

`load_dataset(source)` picks one of three sources: ``synthetic`` (default; seeded, rendered,
no download), a folder in ImageFolder layout (one sub-folder per class, optionally under
``train/`` and ``val/``), or ``cifar10:PATH`` (the python CIFAR-10 batches). Every image is
decoded once into a uint8 [N, 3, S, S] tensor at the storage resolution S, memoised in the
process and, with `cache_dir`, saved to ``<cache_dir>/<fingerprint>.pt``; `train_batches` /
`eval_batches` crop, resize, flip and normalise whole batches on the device.

Modules: `dataset` (Dataset, load_dataset), `split` (ImageSplit), `source` (what a source
provides), `cache`, `synthetic`, `folder` and `images` (decoding files), `cifar`, `batches`.
"""

from scaler.data.batches import (
    EVAL_CROP,
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_batches,
    train_batches,
)
from scaler.data.cifar import CIFAR_FILES, CIFAR_RESOLUTION
from scaler.data.dataset import MAX_IMAGES, MIN_TRAIN_IMAGES, Dataset, check_image_counts, canonical_source, clear_memo, count_classes, count_train_images, has_own_split, load_dataset, take_train
from scaler.data.folder import IMAGE_EXTENSIONS
from scaler.data.source import FORMAT_VERSION
from scaler.data.split import ImageSplit
from scaler.data.synthetic import (
    GLYPH_SETS,
    LAYOUTS,
    TEXTURES,
    SHAPES,
    SYNTHETIC_CLASSES,
    SYNTHETIC_TRAIN,
    SYNTHETIC_VAL,
    SyntheticRenderer,
    render_synthetic,
)

__all__ = [
    "CIFAR_FILES",
    "CIFAR_RESOLUTION",
    "EVAL_CROP",
    "FORMAT_VERSION",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_IMAGES",
    "MIN_TRAIN_IMAGES",
    "IMAGE_EXTENSIONS",
    "GLYPH_SETS",
    "LAYOUTS",
    "TEXTURES",
    "SHAPES",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_TRAIN",
    "SYNTHETIC_VAL",
    "Dataset",
    "ImageSplit",
    "SyntheticRenderer",
    "canonical_source",
    "check_image_counts",
    "clear_memo",
    "count_classes",
    "count_train_images",
    "eval_batches",
    "has_own_split",
    "load_dataset",
    "render_synthetic",
    "take_train",
    "train_batches",
]
