"""Batched augmentation on the target device: `train_batches` (random-resized crop and flip) and
`eval_batches` (centre crop), both resized and ImageNet-normalised for whole batches at once,
with no per-image Python work."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from scaler.data.split import ImageSplit
from scaler.errors import UsageError, check_int
from scaler.scaling import MAX_RESOLUTION, MIN_TRAIN_RESOLUTION

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP = 0.875
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
    check_int("batch_size", batch_size, 1, 1 << 20)
    check_int("resolution", resolution, MIN_TRAIN_RESOLUTION, MAX_RESOLUTION)


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
    steps = n // batch_size if n >= batch_size else 1
    b = min(n, batch_size)
    # The whole epoch's randomness is drawn here and moved in one copy: a copy from the CPU
    # generator per batch would make the host wait for the device at every step (a blocking
    # copy from pageable memory synchronises the stream), so the launches of one step could
    # never overlap the device's work on the previous one. A CPU generator (the one training
    # uses) fills a tensor one draw per element in order, so drawing the epoch at once gives
    # the same numbers as drawing them per batch, and every epoch stays as it was.
    order = torch.randperm(n, generator=generator, device=gen_device).to(device)
    draws = torch.rand((steps, b, 5), generator=generator, device=gen_device).to(device)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for step in range(steps):
        idx = order[step * b : (step + 1) * b]
        x = images.index_select(0, idx).float()
        if pre < size:
            x = F.interpolate(x, size=(pre, pre), mode="area")
        u = draws[step]
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
