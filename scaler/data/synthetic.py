"""The built-in synthetic data set: seeded, procedurally rendered, 10 classes, no download.

Three groups of classes, one per scaling dimension: texture from coarse to fine (resolution),
the large-scale arrangement of small dots (depth, receptive field) and nine distinct glyphs
(width), each object faded into its background by a visibility drawn from 10-100%; see
`SyntheticRenderer`. Format 5 (`scaler.data.source.FORMAT_VERSION`). Format 4 drew every
object at full contrast: a 5-epoch proxy then read the same from the base as from its
depth- and width-only scalings. Format 3 drew dots and glyphs in any colour (often close to the
background's) and only fine textures, so a 5-epoch proxy learned whole classes or none of
them, depending on the seed; format 2 had five shapes x two stripe orientations, on which a
short proxy left most scaled networks near chance.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from scaler.data.source import Loaded, digest
from scaler.data.split import ImageSplit, resize_uint8

# 1000 validation images: one run's top-1 then has a 95% interval of about +-3 points. 1800
# training images: the default search (6 candidates x 5 epochs) took 255 s x 119.5 img/s of
# timm's B0 step = 30,500 images with 2000; the goal is <= 30,000 (benchmarks/search_cost.py).
SYNTHETIC_TRAIN, SYNTHETIC_VAL = 1800, 1000
# Three groups of classes, one per scaling dimension (see SyntheticRenderer).
TEXTURES = ("horizontal", "vertical", "checker", "plain")  # fine detail: resolution
LAYOUTS = ("ring", "cross", "scatter")  # large-scale arrangement of small dots: depth
GLYPH_SETS = ("glyphs-a", "glyphs-b", "glyphs-c")  # distinct patterns to tell apart: width
SYNTHETIC_CLASSES = (tuple(f"disc-{t}" for t in TEXTURES) + tuple(f"dots-{l}" for l in LAYOUTS)
                     + GLYPH_SETS)
SHAPES = ("circle", "square", "triangle", "cross", "ring")  # distractor shapes
GLYPHS_PER_CLASS = 3
GLYPH_CELLS = 5
# cos(2 pi k / 24) * 1024, written out so that no libm enters the rendering.
_COS24 = (1024, 989, 887, 724, 512, 265, 0, -265, -512, -724, -887, -989,
          -1024, -989, -887, -724, -512, -265, 0, 265, 512, 724, 887, 989)


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


@lru_cache(maxsize=None)
def _glyph_bank() -> np.ndarray:
    """The glyphs of the three glyph classes: bool [3, GLYPHS_PER_CLASS, 5, 5], the same for
    every seed (they define the classes). Each has 9-16 of its 25 cells set, and any two
    differ in at least 6 cells, also when one of them is mirrored (training flips images)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0x6C1F, 3])))
    chosen: list[np.ndarray] = []
    total = len(GLYPH_SETS) * GLYPHS_PER_CLASS
    while len(chosen) < total:
        g = rng.integers(0, 2, size=(GLYPH_CELLS, GLYPH_CELLS)).astype(bool)
        if not 9 <= int(g.sum()) <= 16:
            continue
        if all(int((g != c).sum()) >= 6 and int((g[:, ::-1] != c).sum()) >= 6 for c in chosen):
            chosen.append(g)
    bank = np.stack(chosen).reshape(len(GLYPH_SETS), GLYPHS_PER_CLASS, GLYPH_CELLS, GLYPH_CELLS)
    bank.setflags(write=False)
    return bank


class SyntheticRenderer:
    """Renders the synthetic set of one (seed, stream) at `native` px, `count` images per call;
    successive calls continue the same stream (so chunked rendering equals one big call).

    Integer arithmetic and numpy's PCG64 only, so a (seed, stream) renders bit-identical images
    on every machine; image i depends only on the draws before it (a larger count keeps the
    first images). Labels cycle through the classes (balanced splits).

    Each image: a two-colour gradient background, 1-2 plain distractor shapes (radius 10-24 px
    at 256), the class's object in the middle half, faded into what lies under it, then pixel
    noise. The ten classes come in three groups, each built so that one scaling dimension pays:

    * resolution (`disc-horizontal`, `disc-vertical`, `disc-checker`, `disc-plain`): a large
      disc (radius 48-72 px at 256) filled with high-contrast stripes or a checkerboard of
      period 6-32 px at 256 (1.5-8 px at 64) or, for `disc-plain`, with the mean of the two
      colours. The disc's outline is the same in all four; only the texture tells them apart.
      Coarse periods are readable at any resolution, so every network learns the group; the
      finest blur to the plain colour at 64 px, so each step up in resolution reads more.
    * depth (`dots-ring`, `dots-cross`, `dots-scatter`): 12 small dots (radius 7-10 px at 256)
      of one colour placed on a large circle, on the two bars of a large plus, or at random in
      the same area (radius 56-88 px at 256). Locally all three are the same dots; only their
      arrangement over most of the image tells them apart, which needs a receptive field that
      spans the object and several layers to combine the dots into a figure.
    * width (`glyphs-a`, `-b`, `-c`): one of three fixed 5x5 binary glyphs per class (cells of
      12-16 px at 256), the same glyphs for every seed, any two at least 6 cells apart even
      when mirrored. Nine distinct patterns to tell apart: a capacity (channel) test.

    That is the design; measured on three default searches (docs/proxy-design.md, "Where
    each dimension pays"), depth pays on the discs and not on the dots, resolution on every
    group, width on none, and the dots and glyphs carry most of a run's noise.

    Dots and glyphs are drawn in a colour that contrasts with the background where they sit
    (dark on light, light on dark), as the discs' textures are: an object the network cannot
    see teaches it nothing, and made its class a coin toss per seed.

    Then the object is faded: blended with what lay under it by a visibility drawn uniformly
    from 10-100% (`VISIBILITY`, in 256ths), so each class runs from full contrast to about the
    level of the pixel noise (0-31). The faint end is where a larger network pays within a
    short proxy: at full contrast (format 4) the base learned every object as fast as its
    depth- and width-only scalings did; with the fade, depth-only gains 3.7 points over the
    base on average over three seeds, and the order of a search's candidates agrees better
    over seeds on average and with a 4x longer training (README "How far to trust a search").
    `VISIBILITY = (256, 256)` draws nothing more and renders format 4 exactly.
    """

    # Changing any of these changes the data: bump FORMAT_VERSION and the golden hash in
    # tests/test_data.py.
    DISTRACTORS = (1, 2)  # how many, inclusive
    DISTRACTOR_RADIUS = (10, 24)  # px at 256
    DISC_RADIUS = (48, 72)  # px at 256
    DISC_PERIODS = (6, 8, 12, 16, 24, 32)  # texture periods at 256 px, fine to coarse
    DOTS = 12
    DOT_RADIUS = (7, 10)  # px at 256
    LAYOUT_RADIUS = (56, 88)  # px at 256
    GLYPH_CELL = (12, 16)  # px at 256
    VISIBILITY = (25, 256)  # the object's weight against what lies under it, in 256ths

    def __init__(self, seed: int, stream: int, native: int = 256) -> None:
        self.rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([seed, stream, 0x5CA1E])))
        self.n = native
        self.index = 0
        self.noise = self.rng.integers(0, 32, size=(3, 2 * native, 2 * native), dtype=np.uint8)
        self.ramp = np.arange(native, dtype=np.int32) * 256 // native
        self.coord = np.arange(native, dtype=np.int32)
        self.periods = sorted({max(2, self.unit(p)) for p in self.DISC_PERIODS})

    def unit(self, px: int) -> int:
        """A length given at 256 px, scaled to the native resolution."""
        return max(1, px * self.n // 256)

    def _contrasting(self, img: np.ndarray, cy: int, cx: int) -> np.ndarray:
        """A colour that stands out from the image at (cy, cx): dark on a light spot, light on
        a dark one (the background's colours are 30-200)."""
        n = self.n
        spot = img[:, min(max(cy, 0), n - 1), min(max(cx, 0), n - 1)].astype(np.int32)
        if int(spot.sum()) > 3 * 115:
            return self.rng.integers(0, 50, size=3, dtype=np.uint8)
        return self.rng.integers(175, 225, size=3, dtype=np.uint8)

    def _between(self, bounds: tuple[int, int]) -> int:
        """A length drawn uniformly from `bounds` (px at 256), at the native resolution."""
        return int(self.rng.integers(self.unit(bounds[0]), self.unit(bounds[1]) + 1))

    def _stamp(self, img: np.ndarray, mask: np.ndarray, cy: int, cx: int, fill) -> None:
        """Paint `fill` where the odd-sized `mask` centred at (cy, cx) is set (clipped)."""
        n, r = self.n, mask.shape[0] // 2
        y0, x0 = cy - r, cx - r
        ys, xs = max(0, y0), max(0, x0)
        ye, xe = min(n, y0 + mask.shape[0]), min(n, x0 + mask.shape[1])
        if ye <= ys or xe <= xs:
            return
        m = mask[ys - y0 : ye - y0, xs - x0 : xe - x0]
        np.copyto(img[:, ys:ye, xs:xe], fill(ys, ye, xs, xe), where=m[None])

    @staticmethod
    def _plain(color: np.ndarray):
        return lambda ys, ye, xs, xe: color[:, None, None]

    def _texture(self, c_on: np.ndarray, c_off: np.ndarray, period: int, py: int, px: int,
                 kind: str):
        coord, half = self.coord, period // 2

        def fill(ys, ye, xs, xe):
            on_y = (coord[ys:ye, None] + py) % period < half
            on_x = (coord[None, xs:xe] + px) % period < half
            on = {"horizontal": np.broadcast_to(on_y, (ye - ys, xe - xs)),
                  "vertical": np.broadcast_to(on_x, (ye - ys, xe - xs)),
                  "checker": on_y ^ on_x}[kind]
            return np.where(on[None], c_on[:, None, None], c_off[:, None, None])

        return fill

    def _disc_draws(self) -> tuple[int, int, int, np.ndarray, np.ndarray, int, int, int]:
        """A disc's radius, centre (y, x), dark and light colours, texture period and phase
        (y, x), drawn in this order: the images depend on it."""
        rng = self.rng
        r = self._between(self.DISC_RADIUS)
        cy, cx = (int(v) for v in rng.integers(self.n // 4, 3 * self.n // 4 + 1, size=2))
        dark = rng.integers(0, 70, size=3, dtype=np.uint8)
        light = rng.integers(155, 225, size=3, dtype=np.uint8)
        period = self.periods[int(rng.integers(len(self.periods)))]
        py, px = (int(v) for v in rng.integers(0, period, size=2))
        return r, cy, cx, dark, light, period, py, px

    def _disc(self, img: np.ndarray, texture: str) -> None:
        r, cy, cx, dark, light, period, py, px = self._disc_draws()
        if texture == "plain":
            mean = ((dark.astype(np.int32) + light) // 2).astype(np.uint8)
            fill = self._plain(mean)
        else:
            fill = self._texture(light, dark, period, py, px, texture)
        self._stamp(img, _shape_mask(0, r), cy, cx, fill)

    def _dots(self, img: np.ndarray, layout: str) -> None:
        rng, n = self.rng, self.n
        big = self._between(self.LAYOUT_RADIUS)
        cy, cx = (int(v) for v in rng.integers(n // 4, 3 * n // 4 + 1, size=2))
        color = self._contrasting(img, cy, cx)
        dot = _shape_mask(0, self._between(self.DOT_RADIUS))
        if layout == "ring":
            turn = int(rng.integers(2))  # 12 of the 24 directions, even or odd ones
            points = [(_COS24[(2 * k + turn + 6) % 24] * big // 1024,
                       _COS24[(2 * k + turn) % 24] * big // 1024) for k in range(self.DOTS)]
        elif layout == "cross":  # 6 dots on each bar of a plus, none at the centre
            steps = (-3, -2, -1, 1, 2, 3)
            points = [(s * big // 3, 0) for s in steps] + [(0, s * big // 3) for s in steps]
        else:  # scatter: anywhere in the square the other layouts span
            points = [(int(y), int(x)) for y, x in rng.integers(-big, big + 1, size=(self.DOTS, 2))]
        for dy, dx in points:
            self._stamp(img, dot, cy + dy, cx + dx, self._plain(color))

    def _glyph(self, img: np.ndarray, group: int) -> None:
        rng, n = self.rng, self.n
        glyph = _glyph_bank()[group, int(rng.integers(GLYPHS_PER_CLASS))]
        cell = self._between(self.GLYPH_CELL)
        size = cell * GLYPH_CELLS
        mask = np.zeros((size + 1 - size % 2, size + 1 - size % 2), dtype=bool)
        mask[:size, :size] = np.repeat(np.repeat(glyph, cell, 0), cell, 1)
        cy, cx = (int(v) for v in rng.integers(n // 4, 3 * n // 4 + 1, size=2))
        color = self._contrasting(img, cy, cx)
        self._stamp(img, mask, cy, cx, self._plain(color))

    def render(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The next `count` images (uint8 [count, 3, n, n]) and labels (int64 [count])."""
        rng, n = self.rng, self.n
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
            for _ in range(int(rng.integers(self.DISTRACTORS[0], self.DISTRACTORS[1] + 1))):
                shape = int(rng.integers(len(SHAPES)))
                r = self._between(self.DISTRACTOR_RADIUS)
                cy, cx = (int(v) for v in rng.integers(0, n, size=2))
                color = rng.integers(0, 225, size=3, dtype=np.uint8)
                self._stamp(img, _shape_mask(shape, r), cy, cx, self._plain(color))
            label = int(labels[i])
            under = img.astype(np.int32)
            if label < len(TEXTURES):
                self._disc(img, TEXTURES[label])
            elif label < len(TEXTURES) + len(LAYOUTS):
                self._dots(img, LAYOUTS[label - len(TEXTURES)])
            else:
                self._glyph(img, label - len(TEXTURES) - len(LAYOUTS))
            w = int(rng.integers(self.VISIBILITY[0], self.VISIBILITY[1] + 1))
            img[...] = ((under * (256 - w) + img.astype(np.int32) * w) >> 8).astype(np.uint8)
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

    def local_stamp(self) -> str:
        return ""  # rendered from the fingerprint's inputs alone

    @property
    def stamps(self) -> list[list]:
        return []  # no files

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

    def stored_images(self) -> tuple[int, int]:
        return self.n_train + self.n_val, self.storage

    def load(self) -> Loaded:
        train = self._split(self.n_train, 1)
        val = self._split(self.n_val, 2)
        return Loaded(SYNTHETIC_CLASSES, train, val, 0, self.n_train + self.n_val)
