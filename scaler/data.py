"""Image-classification data for proxy training: decoded once into uint8 tensors, augmented in
batches on the target device.

Three sources, chosen by the `source` string of `load_dataset`:

* ``synthetic`` (default): a seeded, procedurally rendered 10-class set that needs fine detail,
  object shape and layout at once (see `render_synthetic`), so resolution, width and depth all
  show in the accuracy of a short proxy run. No download.
* a folder in ImageFolder layout (one sub-folder per class), split into train/val either by
  ``train/`` and ``val/`` sub-folders or automatically (stratified, seeded).
* ``cifar10:PATH``: the python-pickle CIFAR-10 batches in a local folder.

Every image is decoded (or rendered) once into a contiguous uint8 [N, 3, S, S] tensor at the
storage resolution S; `train_batches` / `eval_batches` crop, resize, flip and normalise whole
batches on the device with no per-image Python work. Results are memoised in the process and,
with `cache_dir`, saved to ``<cache_dir>/<fingerprint>.pt``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import tempfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from scaler.errors import RunError, UsageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP = 0.875
SYNTHETIC_TRAIN, SYNTHETIC_VAL = 2000, 500
CIFAR_RESOLUTION = 32
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
# Bumped whenever rendering, decoding or the cache layout changes: part of every fingerprint.
FORMAT_VERSION = 2
_MEMO_SIZE = 4
_memo: OrderedDict[str, "Dataset"] = OrderedDict()


@dataclass(frozen=True, eq=False)
class ImageSplit:
    """Images as uint8 [N, 3, S, S] (contiguous, S = storage resolution) and int64 labels [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, S, S], got {self.images.dtype} "
                             f"{list(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be int64 [{self.images.shape[0]}], got "
                             f"{self.labels.dtype} {list(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded data set. `decoded` counts images decoded or rendered by the call that returned
    it (0 when it came from the in-process memo or the disk cache)."""

    source: str
    classes: tuple[str, ...]
    train: ImageSplit
    val: ImageSplit
    fingerprint: str
    skipped: int
    decoded: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# --------------------------------------------------------------------------------------------
# load_dataset


def load_dataset(
    source: str = "synthetic",
    *,
    storage_resolution: int = 128,
    train_images: int | None = None,
    val_images: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    native_resolution: int = 256,
    cache_dir: Path | None = None,
) -> Dataset:
    """Load (decode once, or fetch from the memo / disk cache) the data set `source` names.

    `train_images` / `val_images` cap the split sizes (synthetic: the sizes, default 2000 / 500);
    capping is stratified per class and seeded. `val_fraction` applies to folders without
    train/ and val/ sub-folders (CIFAR-10 validates on its test_batch). `native_resolution` is
    the synthetic render size. CIFAR-10 is stored at min(32, storage_resolution).
    """
    _check_int("storage_resolution", storage_resolution, 8, 4096)
    _check_int("native_resolution", native_resolution, 32, 4096)
    for name, value in (("train_images", train_images), ("val_images", val_images)):
        if value is not None:
            _check_int(name, value, 1, 10**8)
    if not (isinstance(val_fraction, (int, float)) and 0.0 < val_fraction < 1.0):
        raise UsageError(f"val_fraction = {val_fraction!r} is not allowed; it must be in (0, 1)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed = {seed!r} is not allowed; it must be an integer >= 0")

    if source == "synthetic":
        loader = _SyntheticSource(storage_resolution, native_resolution,
                                  SYNTHETIC_TRAIN if train_images is None else train_images,
                                  SYNTHETIC_VAL if val_images is None else val_images, seed)
    elif source.startswith("cifar10:"):
        loader = _CifarSource(source, storage_resolution, train_images, val_images, seed)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise UsageError(
                f"data source '{source}' does not exist; use 'synthetic', 'cifar10:PATH' "
                "or a folder with one sub-folder per class"
            )
        if not path.is_dir():
            raise UsageError(f"data source '{source}' is a file; give a folder with one "
                             "sub-folder per class, 'synthetic' or 'cifar10:PATH'")
        loader = _FolderSource(source, path, storage_resolution, train_images, val_images,
                               val_fraction, seed)

    fingerprint = loader.fingerprint()
    if fingerprint in _memo:
        _memo.move_to_end(fingerprint)
        return replace(_memo[fingerprint], source=source, decoded=0)

    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir).expanduser() / f"{fingerprint}.pt"
        cached = _read_cache(cache_file, fingerprint, source)
        if cached is not None:
            _remember(cached)
            return cached

    classes, train, val, skipped, decoded = loader.load()
    dataset = Dataset(source, tuple(classes), train, val, fingerprint, skipped, decoded)
    if cache_file is not None:
        _write_cache(cache_file, dataset)
    _remember(dataset)
    return dataset


def clear_memo() -> None:
    """Forget the data sets memoised in this process (the disk cache is left as it is)."""
    _memo.clear()


def _remember(dataset: Dataset) -> None:
    _memo[dataset.fingerprint] = dataset
    _memo.move_to_end(dataset.fingerprint)
    while len(_memo) > _MEMO_SIZE:
        _memo.popitem(last=False)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{name} = {value!r} is not allowed; it must be an integer "
                         f"from {low} to {high}")


def _digest(parts: dict) -> str:
    text = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _file_stamps(root: Path, files: Sequence[Path]) -> list[list]:
    """Relative path, size and mtime of each file: what the fingerprint of a source hashes."""
    stamps = []
    for f in files:
        st = f.stat()
        stamps.append([f.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return stamps


def _read_cache(path: Path, fingerprint: str, source: str) -> Dataset | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("format") != FORMAT_VERSION:
            return None
        return Dataset(
            source=source,
            classes=tuple(blob["classes"]),
            train=ImageSplit(blob["train_images"].contiguous(), blob["train_labels"]),
            val=ImageSplit(blob["val_images"].contiguous(), blob["val_labels"]),
            fingerprint=fingerprint,
            skipped=int(blob["skipped"]),
            decoded=0,
        )
    except Exception:  # a truncated or foreign file: decode again and overwrite it
        return None


def _write_cache(path: Path, dataset: Dataset) -> None:
    """Save atomically: a temporary file in the same folder, then os.replace."""
    blob = {
        "format": FORMAT_VERSION,
        "classes": list(dataset.classes),
        "train_images": dataset.train.images,
        "train_labels": dataset.train.labels,
        "val_images": dataset.val.images,
        "val_labels": dataset.val.labels,
        "skipped": dataset.skipped,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(blob, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise RunError(f"cannot write the data cache {path}: {e.strerror or e}") from None


def _stratified_take(groups: list[list], cap: int | None) -> list[list]:
    """The first items of each (already shuffled) group, `cap` in all, proportional to the group
    sizes (largest remainder, ties to the earlier group)."""
    total = sum(len(g) for g in groups)
    if cap is None or cap >= total:
        return [list(g) for g in groups]
    quotas = [cap * len(g) // total for g in groups]
    remainders = [cap * len(g) % total for g in groups]
    order = sorted(range(len(groups)), key=lambda i: (-remainders[i], i))
    for i in order[: cap - sum(quotas)]:
        quotas[i] += 1
    return [list(g[:q]) for g, q in zip(groups, quotas)]


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N,3,H,W] -> uint8 [N,3,size,size]: exact integer box filter when the ratio is an
    integer, antialiased bilinear otherwise; done in chunks to bound memory."""
    n, _, h, w = images.shape
    if h == size and w == size:
        return images.contiguous()
    out = torch.empty((n, 3, size, size), dtype=torch.uint8)
    for start in range(0, n, 256):
        chunk = images[start : start + 256]
        if h == w and h % size == 0:
            k = h // size  # k*k*255 fits int16 up to k = 11; int32 beyond
            acc = torch.int16 if k <= 11 else torch.int32
            s = chunk.to(acc).view(-1, 3, h, size, k).sum(-1, dtype=acc)
            s = s.view(-1, 3, size, k, size).sum(3, dtype=acc)
            out[start : start + 256] = torch.div(s + (k * k) // 2, k * k,
                                                 rounding_mode="floor").to(torch.uint8)
        else:
            x = F.interpolate(chunk.float(), size=(size, size), mode="bilinear",
                              antialias=size < min(h, w), align_corners=False)
            out[start : start + 256] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


# --------------------------------------------------------------------------------------------
# synthetic

SHAPES = ("circle", "square", "triangle", "cross", "ring")
ORIENTATIONS = ("horizontal", "vertical")
SYNTHETIC_CLASSES = tuple(f"{s}-{o}" for s in SHAPES for o in ORIENTATIONS)


@lru_cache(maxsize=None)
def _shape_mask(shape: int, r: int) -> np.ndarray:
    """Boolean (2r+1, 2r+1) mask of a shape of radius r centred in the square (integer maths)."""
    d = np.arange(-r, r + 1, dtype=np.int32)
    dy, dx = d[:, None], d[None, :]
    rr = dx * dx + dy * dy
    name = SHAPES[shape]
    if name == "circle":
        m = rr <= r * r
    elif name == "square":
        a = r * 7 // 8  # about the circle's area
        m = (np.abs(dx) <= a) & (np.abs(dy) <= a)
    elif name == "triangle":  # apex up, base 2r wide at the bottom
        m = 2 * np.abs(dx) <= dy + r
    elif name == "cross":
        t = max(1, r // 3)
        m = ((np.abs(dx) <= t) & (np.abs(dy) <= r)) | ((np.abs(dy) <= t) & (np.abs(dx) <= r))
    else:  # ring
        inner = r * 6 // 10
        m = (rr <= r * r) & (rr >= inner * inner)
    m.setflags(write=False)
    return m


class SyntheticRenderer:
    """Renders the synthetic set of one (seed, stream) at `native` px, `count` images per call;
    successive calls continue the same stream (so chunked rendering equals one big call).

    Integer arithmetic and numpy's PCG64 only, so a (seed, stream) renders bit-identical images
    on every machine; image i depends only on the draws before it (a larger count keeps the
    first images). Labels cycle through the classes (balanced splits). Each image: a two-colour
    gradient background, 1-3 distractor shapes (radius 10-28 px at 256) with plain or coarsely
    striped fills (period 16-32 px), then the target on top, centred in the middle half,
    radius 44-72 px: one shape with high-contrast stripes (period 4-12 px at 256, dark/light,
    so it looks plain grey where they blur away), whose shape x stripe orientation is the
    class; finally pixel noise. Fine stripes
    alias or vanish at low resolution (orientation needs pixels), the shape needs a receptive
    field that covers the object, and the target must be told apart from distractors of the
    same shapes by its texture.
    """

    # Tuned so that B0 at width 0.5 learns in 3 epochs of 2000 images (measured top-1: 64 px
    # 0.15, 80 px 0.20, 96 px 0.27; chance 0.10). Changing them changes the data: bump
    # FORMAT_VERSION and the golden hash in tests/test_data.py.
    DISTRACTORS = (1, 3)  # how many, inclusive
    DISTRACTOR_RADIUS = (10, 28)  # px at 256
    TARGET_RADIUS = (44, 72)  # px at 256
    # Stripe periods of the target at 256 px, fine to medium: at 64 px only the coarser ones
    # survive, so each step up in resolution makes more of the orientation readable.
    TARGET_PERIODS = (4, 6, 8, 12)

    def __init__(self, seed: int, stream: int, native: int = 256) -> None:
        self.rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([seed, stream, 0x5CA1E])))
        self.n = native
        self.index = 0
        self.noise = self.rng.integers(0, 32, size=(3, 2 * native, 2 * native), dtype=np.uint8)
        self.ramp = np.arange(native, dtype=np.int32) * 256 // native
        self.coord = np.arange(native, dtype=np.int32)
        self.fine_periods = sorted({max(2, self.unit(p)) for p in self.TARGET_PERIODS})

    def unit(self, px: int) -> int:
        """A length given at 256 px, scaled to the native resolution."""
        return max(1, px * self.n // 256)

    def _stamp(self, img: np.ndarray, shape: int, r: int, cy: int, cx: int, fill) -> None:
        n, mask = self.n, _shape_mask(shape, r)
        y0, x0 = cy - r, cx - r
        ys, xs = max(0, y0), max(0, x0)
        ye, xe = min(n, y0 + 2 * r + 1), min(n, x0 + 2 * r + 1)
        if ye <= ys or xe <= xs:
            return
        m = mask[ys - y0 : ye - y0, xs - x0 : xe - x0]
        np.copyto(img[:, ys:ye, xs:xe], fill(ys, ye, xs, xe), where=m[None])

    @staticmethod
    def _plain(color: np.ndarray):
        return lambda ys, ye, xs, xe: color[:, None, None]

    def _stripes(self, c_on: np.ndarray, c_off: np.ndarray, period: int, phase: int,
                 vertical: bool):
        coord = self.coord

        def fill(ys, ye, xs, xe):
            if vertical:  # vertical stripes: the pattern varies along x
                on = (coord[xs:xe] + phase) % period < period // 2
                return np.where(on[None, None, :], c_on[:, None, None], c_off[:, None, None])
            on = (coord[ys:ye] + phase) % period < period // 2
            return np.where(on[None, :, None], c_on[:, None, None], c_off[:, None, None])

        return fill

    def render(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The next `count` images (uint8 [count, 3, n, n]) and labels (int64 [count])."""
        rng, n, unit = self.rng, self.n, self.unit
        images = np.empty((count, 3, n, n), dtype=np.uint8)
        labels = (np.arange(self.index, self.index + count, dtype=np.int64)
                  % len(SYNTHETIC_CLASSES))
        self.index += count
        for i in range(count):
            img = images[i]
            # Background: gradient between two dull colours, horizontal or vertical.
            c0 = rng.integers(30, 200, size=3, dtype=np.int32)
            c1 = rng.integers(30, 200, size=3, dtype=np.int32)
            grad = (c0[:, None] + ((c1 - c0)[:, None] * self.ramp[None, :] >> 8)).astype(np.uint8)
            img[...] = grad[:, :, None] if rng.integers(2) else grad[:, None, :]
            # Distractors anywhere, a third of them with coarse stripes.
            for _ in range(int(rng.integers(self.DISTRACTORS[0], self.DISTRACTORS[1] + 1))):
                shape = int(rng.integers(len(SHAPES)))
                r = int(rng.integers(unit(self.DISTRACTOR_RADIUS[0]), unit(self.DISTRACTOR_RADIUS[1]) + 1))
                cy, cx = (int(v) for v in rng.integers(0, n, size=2))
                color = rng.integers(0, 225, size=3, dtype=np.uint8)
                if rng.integers(3) == 0:
                    other = rng.integers(0, 225, size=3, dtype=np.uint8)
                    period = int(rng.integers(unit(16), unit(32) + 1))
                    fill = self._stripes(color, other, period, int(rng.integers(period)),
                                         bool(rng.integers(2)))
                else:
                    fill = self._plain(color)
                self._stamp(img, shape, r, cy, cx, fill)
            # The target: central half, on top, fine high-contrast stripes.
            shape, vertical = divmod(int(labels[i]), 2)
            r = int(rng.integers(unit(self.TARGET_RADIUS[0]), unit(self.TARGET_RADIUS[1]) + 1))
            cy, cx = (int(v) for v in rng.integers(n // 4, 3 * n // 4 + 1, size=2))
            dark = rng.integers(0, 70, size=3, dtype=np.uint8)
            light = rng.integers(155, 225, size=3, dtype=np.uint8)
            period = self.fine_periods[int(rng.integers(len(self.fine_periods)))]
            self._stamp(img, shape, r, cy, cx,
                        self._stripes(light, dark, period, int(rng.integers(period)),
                                      bool(vertical)))
            # Pixel noise: a random window of a noise tile (0..31; colours stay <= 224).
            oy, ox = (int(v) for v in rng.integers(0, n, size=2))
            img += self.noise[:, oy : oy + n, ox : ox + n]
        return images, labels


def render_synthetic(count: int, seed: int, stream: int, native: int = 256
                     ) -> tuple[np.ndarray, np.ndarray]:
    """`count` synthetic images at native resolution and their labels (see SyntheticRenderer)."""
    return SyntheticRenderer(seed, stream, native).render(count)


class _SyntheticSource:
    def __init__(self, storage: int, native: int, n_train: int, n_val: int, seed: int) -> None:
        self.storage, self.native, self.n_train, self.n_val, self.seed = (
            storage, native, n_train, n_val, seed)

    def fingerprint(self) -> str:
        return _digest({"source": "synthetic", "storage": self.storage, "native": self.native,
                        "train": self.n_train, "val": self.n_val, "seed": self.seed})

    def _split(self, count: int, stream: int) -> ImageSplit:
        images = torch.empty((count, 3, self.storage, self.storage), dtype=torch.uint8)
        labels = torch.empty(count, dtype=torch.int64)
        renderer = SyntheticRenderer(self.seed, stream, self.native)
        chunk = max(1, (48 << 20) // (3 * self.native * self.native))  # ~48 MB at native
        for start in range(0, count, chunk):
            raw, lab = renderer.render(min(chunk, count - start))
            images[start : start + len(lab)] = _resize_uint8(torch.from_numpy(raw), self.storage)
            labels[start : start + len(lab)] = torch.from_numpy(lab)
        return ImageSplit(images, labels)

    def load(self):
        train = self._split(self.n_train, 1)
        val = self._split(self.n_val, 2)
        return SYNTHETIC_CLASSES, train, val, 0, self.n_train + self.n_val


# --------------------------------------------------------------------------------------------
# folders (ImageFolder layout)


def _decode_image(path: Path, size: int) -> np.ndarray | None:
    """RGB uint8 [size, size, 3]: shorter side resized to `size` (antialiased bicubic), centre
    crop; None when Pillow cannot read the file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))  # JPEG: decode at the smallest scale still >= size
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) / 2, (h - side) / 2
            im = im.resize((size, size), Image.Resampling.BICUBIC,
                           box=(left, top, left + side, top + side))
            return np.asarray(im, dtype=np.uint8)
    except Exception:  # any decoder failure (truncated, garbage, unsupported) means "skip it"
        return None


def _class_files(folder: Path) -> list[Path]:
    """Image files under a class folder (recursively, hidden entries ignored), sorted."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                files.append(Path(dirpath) / name)
    return sorted(files)


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


class _FolderSource:
    def __init__(self, source: str, root: Path, storage: int, n_train: int | None,
                 n_val: int | None, val_fraction: float, seed: int) -> None:
        self.source, self.root, self.storage = source, root, storage
        self.n_train, self.n_val, self.val_fraction, self.seed = n_train, n_val, val_fraction, seed
        self.presplit = (root / "train").is_dir() and (root / "val").is_dir()
        train_root = root / "train" if self.presplit else root
        class_dirs = _class_dirs(train_root)
        if not class_dirs:
            raise UsageError(f"data folder {train_root} has no class sub-folders; it needs one "
                             "sub-folder of images per class")
        if len(class_dirs) < 2:
            raise UsageError(f"data folder {train_root} has 1 class ('{class_dirs[0].name}'); "
                             "it needs at least 2 class sub-folders")
        self.classes = [d.name for d in class_dirs]
        self.train_files = [_class_files(d) for d in class_dirs]
        self.val_files: list[list[Path]] | None = None
        if self.presplit:
            val_dirs = {d.name: d for d in _class_dirs(root / "val")}
            extra = sorted(set(val_dirs) - set(self.classes))
            if extra:
                raise UsageError(f"val/ has class folder '{extra[0]}' that train/ lacks; "
                                 f"allowed classes: {', '.join(self.classes)}")
            self.val_files = [_class_files(val_dirs[c]) if c in val_dirs else []
                              for c in self.classes]
        for i, name in enumerate(self.classes):
            if not self.train_files[i] and not (self.val_files and self.val_files[i]):
                raise UsageError(f"class folder '{name}' has no images "
                                 f"({', '.join(IMAGE_EXTENSIONS)})")

    def fingerprint(self) -> str:
        files = [f for group in self.train_files + (self.val_files or []) for f in group]
        return _digest({
            "source": "folder", "files": _file_stamps(self.root, files), "storage": self.storage,
            "train": self.n_train, "val": self.n_val, "seed": self.seed,
            "val_fraction": None if self.presplit else self.val_fraction,
        })

    def _select(self) -> tuple[list[list[Path]], list[list[Path]]]:
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
        return _stratified_take(train, self.n_train), _stratified_take(val, self.n_val)

    def load(self):
        train_sel, val_sel = self._select()
        jobs = [(f, c) for sel in (train_sel, val_sel) for c, files in enumerate(sel)
                for f in files]
        workers = max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:  # Pillow releases the GIL while decoding
            arrays = list(pool.map(lambda job: _decode_image(job[0], self.storage), jobs))
        n_train = sum(len(files) for files in train_sel)
        readable = [0] * len(self.classes)
        splits = []
        for part, span in ((0, slice(0, n_train)), (1, slice(n_train, len(jobs)))):
            imgs, labels = [], []
            for (_, c), arr in zip(jobs[span], arrays[span]):
                if arr is not None:
                    imgs.append(arr)
                    labels.append(c)
                    readable[c] += 1
            splits.append((imgs, labels))
        for c, name in enumerate(self.classes):
            if readable[c] == 0:
                raise UsageError(f"class folder '{name}' has no readable images")
        for (imgs, _), which in zip(splits, ("training", "validation")):
            if not imgs:
                raise UsageError(f"the {which} split of {self.source} is empty; add images or "
                                 "raise val_fraction / the image counts")
        train, val = (self._to_split(*s) for s in splits)
        skipped = len(jobs) - len(train) - len(val)
        return self.classes, train, val, skipped, len(train) + len(val)

    def _to_split(self, imgs: list[np.ndarray], labels: list[int]) -> ImageSplit:
        images = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
        return ImageSplit(images, torch.tensor(labels, dtype=torch.int64))


# --------------------------------------------------------------------------------------------
# CIFAR-10 python batches


class _CifarSource:
    def __init__(self, source: str, storage: int, n_train: int | None, n_val: int | None,
                 seed: int) -> None:
        path = source[len("cifar10:"):]
        if not path:
            raise UsageError("data source 'cifar10:' names no folder; use cifar10:PATH with "
                             "the python CIFAR-10 batches in PATH")
        self.root = Path(path).expanduser()
        if not self.root.is_dir():
            raise UsageError(f"CIFAR-10 folder {self.root} does not exist; it must hold "
                             f"{', '.join(CIFAR_FILES)}")
        for name in CIFAR_FILES:
            if not (self.root / name).is_file():
                raise UsageError(f"CIFAR-10 file {self.root / name} is missing; the folder must "
                                 f"hold {', '.join(CIFAR_FILES)}")
        self.storage = min(CIFAR_RESOLUTION, storage)
        self.n_train, self.n_val, self.seed = n_train, n_val, seed

    def fingerprint(self) -> str:
        files = [self.root / name for name in CIFAR_FILES]
        return _digest({"source": "cifar10", "files": _file_stamps(self.root, files),
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
            lab = np.asarray(blob.get(b"labels", blob.get(b"fine_labels")), dtype=np.int64)
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
        keep = np.sort(np.array([i for g in _stratified_take(groups, cap) for i in g],
                                dtype=np.int64))
        images = torch.from_numpy(data[keep].reshape(-1, 3, 32, 32))
        return ImageSplit(_resize_uint8(images, self.storage),
                          torch.from_numpy(labels[keep].copy()))

    def load(self):
        meta = self._unpickle("batches.meta")
        names = meta.get(b"label_names")
        if not names:
            raise UsageError(f"CIFAR-10 file {self.root / 'batches.meta'} has no b'label_names'")
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 0xC1FA])))
        train = self._split(*self._batch(CIFAR_FILES[:5]), self.n_train, len(classes), rng)
        val = self._split(*self._batch(["test_batch"]), self.n_val, len(classes), rng)
        return classes, train, val, 0, len(train) + len(val)


# --------------------------------------------------------------------------------------------
# batches


def _normaliser(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with x_norm = x_uint8 * scale + shift (ImageNet mean/std)."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return 1.0 / (255.0 * std), -mean / std


def _on_device(split: ImageSplit, device: torch.device | str):
    """The split's uint8 images and labels moved to `device` once, with the normaliser."""
    device = torch.device(device)
    return (device, split.images.to(device), split.labels.to(device), *_normaliser(device))


def _check_batching(batch_size: int, resolution: int) -> None:
    _check_int("batch_size", batch_size, 1, 1 << 20)
    _check_int("resolution", resolution, 8, 8192)


def train_batches(
    split: ImageSplit,
    *,
    batch_size: int,
    resolution: int,
    generator: torch.Generator,
    device: torch.device,
    channels_last: bool = True,
    scale: tuple[float, float] = (0.35, 1.0),
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One shuffled epoch of augmented float32 batches [B, 3, R, R] (normalised) and labels.

    Random-resized crop (area fraction in `scale`, aspect 3/4..4/3) plus horizontal flip, for
    the whole batch at once with one affine_grid + grid_sample (per-sample theta). When the
    stored images are much larger than needed, each batch is first area-averaged so that
    bilinear sampling never skips pixels (no aliasing that the stored image does not have).
    The last partial batch is dropped unless the split is smaller than one batch. All
    randomness comes from `generator` (a CPU generator is fine for any device).
    """
    _check_batching(batch_size, resolution)
    lo, hi = scale
    if not 0.0 < lo <= hi <= 1.0:
        raise UsageError(f"scale = {scale!r} is not allowed; it needs 0 < min <= max <= 1")
    n = len(split)
    if n == 0:
        return
    device, images, labels, mul, add = _on_device(split, device)
    size = split.resolution
    # Largest crop side (in stored pixels) is `size`; pre-shrink so it is <= resolution / sqrt(lo)
    # pixels, which keeps the bilinear down-sampling factor below ~1.7.
    pre = min(size, math.ceil(resolution / math.sqrt(lo)))
    gen_device = generator.device
    order = torch.randperm(n, generator=generator, device=gen_device).to(device)
    steps = n // batch_size if n >= batch_size else 1
    memory = torch.channels_last if channels_last else torch.contiguous_format
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for step in range(steps):
        idx = order[step * batch_size : (step + 1) * batch_size]
        b = idx.numel()
        x = images.index_select(0, idx).float()
        if pre < size:
            x = F.interpolate(x, size=(pre, pre), mode="area")
        u = torch.rand((b, 5), generator=generator, device=gen_device).to(device)
        area = lo + (hi - lo) * u[:, 0]
        ratio = torch.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[:, 1])
        w = torch.sqrt(area * ratio).clamp_(max=1.0)  # crop size as a fraction of the image
        h = torch.sqrt(area / ratio).clamp_(max=1.0)
        cx = (1.0 - w) * (2.0 * u[:, 2] - 1.0)  # crop centre in [-1, 1] coordinates
        cy = (1.0 - h) * (2.0 * u[:, 3] - 1.0)
        flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
        theta = torch.zeros((b, 2, 3), device=device)
        theta[:, 0, 0] = w * flip
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = h
        theta[:, 1, 2] = cy
        grid = F.affine_grid(theta, [b, 3, resolution, resolution], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        x = torch.addcmul(add, x, mul).contiguous(memory_format=memory)
        yield x, labels.index_select(0, idx)


def eval_batches(
    split: ImageSplit,
    *,
    batch_size: int,
    resolution: int,
    device: torch.device,
    channels_last: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The whole split in order: centre crop (fraction 0.875), resize to `resolution`
    (antialiased bilinear), normalise; float32 [B, 3, R, R] and labels, last batch partial."""
    _check_batching(batch_size, resolution)
    n = len(split)
    if n == 0:
        return
    device, images, labels, mul, add = _on_device(split, device)
    size = split.resolution
    crop = max(1, round(size * EVAL_CROP))
    top = (size - crop) // 2
    memory = torch.channels_last if channels_last else torch.contiguous_format
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size, :, top : top + crop, top : top + crop].float()
        if crop != resolution:
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear",
                              antialias=crop > resolution, align_corners=False)
        x = torch.addcmul(add, x, mul).contiguous(memory_format=memory)
        yield x, labels[start : start + batch_size]
