"""One split of decoded images (`ImageSplit`) and the two helpers the sources build their splits
with: seeded stratified capping and exact uint8 resizing."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


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

    def to(self, device: torch.device | str) -> ImageSplit:
        """The split on `device` (itself where it already lies there)."""
        images, labels = self.images.to(device), self.labels.to(device)
        return self if images is self.images and labels is self.labels else ImageSplit(images, labels)


def stratified_take(groups: list[list], cap: int | None) -> list[list]:
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


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
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
