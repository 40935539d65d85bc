"""The built-in synthetic data set: seeded, procedurally rendered, 10 classes, no download.

It needs fine detail, object shape and layout at once (see `SyntheticRenderer`), so resolution,
width and depth all show in the accuracy of a short proxy run.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from scaler.data.source import Loaded, digest
from scaler.data.split import ImageSplit, resize_uint8

SYNTHETIC_TRAIN, SYNTHETIC_VAL = 2000, 500
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



class SyntheticSource:
    """The synthetic set of one seed: `n_train` / `n_val` images rendered at `native` px and
    stored at `storage` px."""

    def __init__(self, storage: int, native: int, n_train: int, n_val: int, seed: int) -> None:
        self.storage, self.native, self.n_train, self.n_val, self.seed = (
            storage, native, n_train, n_val, seed)

    def fingerprint(self) -> str:
        return digest({"source": "synthetic", "storage": self.storage, "native": self.native,
                       "train": self.n_train, "val": self.n_val, "seed": self.seed})

    def _split(self, count: int, stream: int) -> ImageSplit:
        images = torch.empty((count, 3, self.storage, self.storage), dtype=torch.uint8)
        labels = torch.empty(count, dtype=torch.int64)
        renderer = SyntheticRenderer(self.seed, stream, self.native)
        chunk = max(1, (48 << 20) // (3 * self.native * self.native))  # ~48 MB at native
        for start in range(0, count, chunk):
            raw, lab = renderer.render(min(chunk, count - start))
            images[start : start + len(lab)] = resize_uint8(torch.from_numpy(raw), self.storage)
            labels[start : start + len(lab)] = torch.from_numpy(lab)
        return ImageSplit(images, labels)

    def load(self) -> Loaded:
        train = self._split(self.n_train, 1)
        val = self._split(self.n_val, 2)
        return Loaded(SYNTHETIC_CLASSES, train, val, 0, self.n_train + self.n_val)
