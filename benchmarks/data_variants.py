"""Designs of the built-in synthetic data that were tried for the default proxy and not kept,
so that the README's figures for them can be reproduced: `proxy_probe.py --variant NAME=ARGS`
(repeatable) patches `scaler.data.synthetic` (and the class list `scaler.data.dataset`
counts) in the probe's process only, and gives the patched data a fingerprint of its own.
None of this is library behaviour; a search always renders the data as `SyntheticRenderer`
does.

    no-glyphs                 the 7 disc and dot classes only
    glyphs-per-class=N        N glyphs per glyph class instead of 3
    glyph-cell=LO,HI          glyph cells of LO-HI px at 256 instead of 12-16
    mosaic=COUNT,LO,HI        each glyph image shows COUNT glyphs of its class, cells LO-HI px
    conjunctions=RMIN,RMAX    classes 4-9 as shape x fill conjunctions, shapes RMIN-RMAX px
    glyph-classes=K           K classes, one fixed glyph each, no discs or dots
    visibility=LO             class objects faded to LO-100% visibility instead of 10-100%
                              (100: at full contrast, as data format 4 drew them)
    textures=LO               10 classes, all textured discs (the 4 of format 5 and 6 more:
                              diagonal, diamond, plaid, spots, rings, lines), LO-100% visibility
    token-bags=V,K,S,N,LO,HI  10 classes, each a distribution over V small 3x3 tokens (a
                              uniform share plus K signature tokens holding S percent); N
                              tokens per image on a jittered grid, cells LO-HI px at 256
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import scaler.data.dataset as dataset_module
import scaler.data.synthetic as synthetic
from scaler.data.source import digest
from scaler.data.synthetic import SyntheticRenderer, _shape_mask


def _ints(args: str, count: int) -> list[int]:
    """`count` comma-separated integers; ValueError, in words, for anything else."""
    try:
        values: list[int] | None = [int(v) for v in args.split(",")] if args else []
    except ValueError:
        values = None
    if values is None or len(values) != count:
        raise ValueError(f"this variant takes {count} integer(s), got {args!r}")
    return values


def _set_classes(names: tuple[str, ...]) -> None:
    """The class list the renderer labels with and the data layer counts (both bindings)."""
    synthetic.SYNTHETIC_CLASSES = names
    dataset_module.SYNTHETIC_CLASSES = names


def _route_all_to_glyph(names: tuple[str, ...]) -> None:
    """Every label drawn by `SyntheticRenderer._glyph(img, label)`: no disc or dot classes."""
    synthetic.TEXTURES, synthetic.LAYOUTS = (), ()
    _set_classes(names)


def _glyph_mask(glyph: np.ndarray, cell: int) -> np.ndarray:
    """A binary glyph blown up to `cell` px per cell, in an odd-sized square."""
    size = cell * glyph.shape[0]
    mask = np.zeros((size + 1 - size % 2, size + 1 - size % 2), dtype=bool)
    mask[:size, :size] = np.repeat(np.repeat(glyph, cell, 0), cell, 1)
    return mask


def _glyph_bank(count: int, side: int, cells: tuple[int, int], distance: int, key: int) -> np.ndarray:
    """`count` fixed binary glyphs of side x side cells, `cells` of them set, any two at least
    `distance` cells apart also when one is mirrored (training flips images)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0x6C1F, key])))
    chosen: list[np.ndarray] = []
    while len(chosen) < count:
        g = rng.integers(0, 2, size=(side, side)).astype(bool)
        if not cells[0] <= int(g.sum()) <= cells[1]:
            continue
        if all(int((g != c).sum()) >= distance and int((g[:, ::-1] != c).sum()) >= distance
               for c in chosen):
            chosen.append(g)
    return np.stack(chosen)


def no_glyphs(args: str) -> str:
    _ints(args, 0)
    _set_classes(synthetic.SYNTHETIC_CLASSES[: len(synthetic.TEXTURES) + len(synthetic.LAYOUTS)])
    return "no glyph classes"


def glyphs_per_class(args: str) -> str:
    (n,) = _ints(args, 1)
    synthetic.GLYPHS_PER_CLASS = n
    synthetic._glyph_bank.cache_clear()
    return f"{n} glyphs per glyph class"


def glyph_cell(args: str) -> str:
    lo, hi = _ints(args, 2)
    SyntheticRenderer.GLYPH_CELL = (lo, hi)
    return f"glyph cells {lo}-{hi} px at 256"


def mosaic(args: str) -> str:
    count, lo, hi = _ints(args, 3)

    def draw(self: SyntheticRenderer, img: np.ndarray, group: int) -> None:
        rng, n = self.rng, self.n
        cell = self._between((lo, hi))
        for _ in range(count):
            glyph = synthetic._glyph_bank()[group, int(rng.integers(synthetic.GLYPHS_PER_CLASS))]
            cy, cx = (int(v) for v in rng.integers(n // 6, 5 * n // 6 + 1, size=2))
            color = self._contrasting(img, cy, cx)
            self._stamp(img, _glyph_mask(glyph, cell), cy, cx, self._plain(color))

    SyntheticRenderer._glyph = draw
    return f"glyph images show {count} glyphs of their class, cells {lo}-{hi} px"


def conjunctions(args: str) -> str:
    rmin, rmax = _ints(args, 2)
    # Two (shape, fill) pairs per class over 4 shapes x 3 fills: no shape or fill alone tells
    # a class.
    pairs = (((0, 0), (1, 1)), ((0, 1), (2, 2)), ((0, 2), (3, 0)),
             ((1, 0), (2, 1)), ((1, 2), (3, 1)), ((2, 0), (3, 2)))
    shapes = (1, 2, 3, 4)  # square, triangle, cross, ring
    fills = ("horizontal", "vertical", "checker")
    periods = (16, 24, 32)  # coarse: readable at any resolution

    def draw(self: SyntheticRenderer, img: np.ndarray, cls: int) -> None:
        rng, n = self.rng, self.n
        shape, fill = pairs[cls][int(rng.integers(2))]
        r = self._between((rmin, rmax))
        cy, cx = (int(v) for v in rng.integers(n // 4, 3 * n // 4 + 1, size=2))
        dark = rng.integers(0, 70, size=3, dtype=np.uint8)
        light = rng.integers(155, 225, size=3, dtype=np.uint8)
        period = max(2, self.unit(periods[int(rng.integers(len(periods)))]))
        py, px = (int(v) for v in rng.integers(0, period, size=2))
        self._stamp(img, _shape_mask(shapes[shape], r), cy, cx,
                    self._texture(light, dark, period, py, px, fills[fill]))

    SyntheticRenderer._dots = lambda self, img, layout: draw(self, img, synthetic.LAYOUTS.index(layout))
    SyntheticRenderer._glyph = lambda self, img, group: draw(self, img, 3 + group)
    return f"classes 4-9 as shape x fill conjunctions, radius {rmin}-{rmax} px"


def glyph_classes(args: str) -> str:
    (k,) = _ints(args, 1)
    bank = _glyph_bank(k, 5, (9, 16), 5, 7)

    def draw(self: SyntheticRenderer, img: np.ndarray, cls: int) -> None:
        rng, n = self.rng, self.n
        cell = self._between(self.GLYPH_CELL)
        cy, cx = (int(v) for v in rng.integers(n // 4, 3 * n // 4 + 1, size=2))
        color = self._contrasting(img, cy, cx)
        self._stamp(img, _glyph_mask(bank[cls], cell), cy, cx, self._plain(color))

    _route_all_to_glyph(tuple(f"glyph-{i}" for i in range(k)))
    SyntheticRenderer._glyph = draw
    return f"{k} classes of one glyph each"


def visibility(args: str) -> str:
    (lo,) = _ints(args, 1)
    if not 0 <= lo <= 100:
        raise ValueError(f"visibility takes a percentage 0-100, got {lo}")
    SyntheticRenderer.VISIBILITY = (lo * 256 // 100, 256)
    return f"class objects at {lo}-100% visibility"


def token_bags(args: str) -> str:
    v, k, share, count, lo, hi = _ints(args, 6)
    classes = 10
    bank = _glyph_bank(v, 3, (3, 6), 2, 0x70C)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0x70C, v, k])))
    p = np.full((classes, v), (1 - share / 100) / v)
    for c in range(classes):
        p[c, rng.choice(v, k, replace=False)] += share / 100 / k
    cumulative = np.cumsum(p, axis=1)
    grid = max(1, round(count ** 0.5))

    def draw(self: SyntheticRenderer, img: np.ndarray, cls: int) -> None:
        rng, n = self.rng, self.n
        step = n // grid
        tokens = np.minimum(np.searchsorted(cumulative[cls], rng.random(grid * grid)), v - 1)
        for i, t in enumerate(tokens):
            mask = _glyph_mask(bank[t], self._between((lo, hi)))
            gy, gx = divmod(i, grid)
            slack = max(1, step - mask.shape[0])
            cy = gy * step + mask.shape[0] // 2 + int(rng.integers(slack))
            cx = gx * step + mask.shape[0] // 2 + int(rng.integers(slack))
            self._stamp(img, mask, cy, cx, self._plain(self._contrasting(img, cy, cx)))

    _route_all_to_glyph(tuple(f"bag-{i}" for i in range(classes)))
    SyntheticRenderer.DISTRACTORS = (0, 0)
    SyntheticRenderer._glyph = draw
    return f"token bags: {v} tokens, {k} signature tokens holding {share}%, {grid * grid} per image"


def textures(args: str) -> str:
    (lo,) = _ints(args, 1)
    kinds = ("horizontal", "vertical", "checker", "plain", "diagonal", "diamond", "plaid",
             "spots", "rings", "lines")

    def pattern(kind: str, period: int, ys: np.ndarray, xs: np.ndarray, cy: int, cx: int,
                turn: int) -> np.ndarray:
        half = period // 2
        y, x = ys[:, None], xs[None, :]
        if kind == "horizontal":
            return np.broadcast_to(y % period < half, (len(ys), len(xs)))
        if kind == "vertical":
            return np.broadcast_to(x % period < half, (len(ys), len(xs)))
        if kind == "checker":
            return (y % period < half) ^ (x % period < half)
        if kind == "diagonal":  # either direction: a flip turns one into the other
            return ((x + y) if turn else (x - y)) % period < half
        if kind == "diamond":
            return ((x + y) % period < half) ^ ((x - y) % period < half)
        if kind == "plaid":  # thin lines both ways
            return (y % period < max(1, period // 4)) | (x % period < max(1, period // 4))
        if kind == "spots":
            return (y % period < half) & (x % period < half)
        if kind == "rings":
            d = np.floor(np.sqrt(((y - cy) ** 2 + (x - cx) ** 2).astype(np.float64))).astype(np.int64)
            return d % period < half
        return np.broadcast_to(y % period < max(1, period // 4), (len(ys), len(xs)))  # lines

    def draw(self: SyntheticRenderer, img: np.ndarray, kind: str) -> None:
        r, cy, cx, dark, light, period, py, px = self._disc_draws()
        turn = int(self.rng.integers(2))
        if kind == "plain":
            mean = ((dark.astype(np.int32) + light) // 2).astype(np.uint8)
            fill = self._plain(mean)
        else:
            def fill(ys, ye, xs, xe):
                on = pattern(kind, period, self.coord[ys:ye] + py, self.coord[xs:xe] + px,
                             cy + py, cx + px, turn)
                return np.where(on[None], light[:, None, None], dark[:, None, None])
        self._stamp(img, _shape_mask(0, r), cy, cx, fill)

    synthetic.TEXTURES, synthetic.LAYOUTS = kinds, ()
    _set_classes(tuple(f"disc-{k}" for k in kinds))
    SyntheticRenderer._disc = draw
    SyntheticRenderer.VISIBILITY = (lo * 256 // 100, 256)
    return f"10 textured disc classes at {lo}-100% visibility"


VARIANTS: dict[str, Callable[[str], str]] = {
    "no-glyphs": no_glyphs,
    "glyphs-per-class": glyphs_per_class,
    "glyph-cell": glyph_cell,
    "mosaic": mosaic,
    "conjunctions": conjunctions,
    "glyph-classes": glyph_classes,
    "visibility": visibility,
    "token-bags": token_bags,
    "textures": textures,
}


def apply(spec: str) -> str:
    """Patch the synthetic data by `NAME[=ARGS]`; returns what was changed, in words. A spec
    it cannot read raises ValueError, in words (the probe makes it a usage error)."""
    name, _, args = spec.partition("=")
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    described = VARIANTS[name](args)
    # Variant images get a fingerprint of their own: a search or probe run with a variant
    # never reads plain images from a cache (nor leaves its own for plain runs), and a study
    # begun on plain data refuses to resume on the variant's.
    plain = synthetic.SyntheticSource.fingerprint
    synthetic.SyntheticSource.fingerprint = lambda self: digest({"data": plain(self), "variant": spec})
    return described
