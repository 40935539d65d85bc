"""Decoding one image file into RGB uint8 at the storage resolution.

Every mode Pillow opens is brought to the 8-bit range it stands for (16-bit greyscale is
scaled, not clipped to white) or refused by name; EXIF orientation is applied; files over
Pillow's decompression-bomb limit are refused from their header, before any pixel is decoded.
A file that cannot be used raises `Unreadable`, whose message is the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Modes whose 8-bit channels Pillow's own convert("RGB") maps correctly (alpha is dropped).
_CONVERTIBLE = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "HSV"})
# 16-bit greyscale (PNG, TIFF). Pillow opens 16-bit PGM as I (32-bit): I and F go by range.
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


class Unreadable(Exception):
    """An image file that cannot be used; the message is the reason, short, for the user."""


def max_pixels() -> int | None:
    """Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS): larger images are refused."""
    return Image.MAX_IMAGE_PIXELS


def decode_image(path: Path, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3]: upright (EXIF orientation), shorter side resized to `size`
    (antialiased bicubic), centre crop. Raises `Unreadable` with the reason for a file that
    cannot be used (empty, not an image, truncated, too large, a mode with no 8-bit meaning)."""
    try:
        if path.stat().st_size == 0:
            raise Unreadable("empty file")
        with Image.open(path) as im:
            _check_pixels(im.size[0] * im.size[1])
            im.draft("RGB", (size, size))  # JPEG: decode at the smallest scale still >= size
            ImageOps.exif_transpose(im, in_place=True)
            im = _to_rgb(im)
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) / 2, (h - side) / 2
            im = im.resize((size, size), Image.Resampling.BICUBIC,
                           box=(left, top, left + side, top + side))
            return np.asarray(im, dtype=np.uint8)
    except Unreadable:
        raise
    except Image.DecompressionBombError as e:  # over twice the limit: Image.open refuses it
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        raise Unreadable(_too_large(int(pixels[1]) if pixels else None)) from None
    except UnidentifiedImageError:
        raise Unreadable("not an image Pillow can read") from None
    except OSError as e:  # opening (permissions, vanished file) or decoding (truncated data)
        reason = f"cannot read: {e.strerror}" if e.strerror else f"corrupt or truncated: {_line(e)}"
        raise Unreadable(reason) from None
    except Exception as e:  # any other decoder failure means "skip it", with the reason
        raise Unreadable(f"cannot decode: {_line(e)}") from None


def _check_pixels(pixels: int) -> None:
    limit = max_pixels()
    if limit is not None and pixels > limit:
        raise Unreadable(_too_large(pixels))


def _too_large(pixels: int | None) -> str:
    limit = f"Pillow's limit of {max_pixels() / 1e6:.3g} Mpx"
    if pixels is None:
        return f"too large: over {limit}"
    return f"too large: {pixels / 1e6:.3g} Mpx, over {limit}"


def _line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 100 else text[:97] + "..."


def _to_rgb(im: Image.Image) -> Image.Image:
    """The image as 8-bit RGB, each mode mapped by what its values mean."""
    mode = im.mode
    if mode in _CONVERTIBLE:
        return im.convert("RGB")
    if mode == "LAB":  # convert("RGB") would copy L, a, b into R, G, B: go through CIELAB
        from PIL import ImageCms  # only here: Pillow may be built without LittleCMS

        lab_to_srgb = ImageCms.buildTransform(ImageCms.createProfile("LAB"),
                                              ImageCms.createProfile("sRGB"), "LAB", "RGB")
        return ImageCms.applyTransform(im, lab_to_srgb)
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):  # convert("RGB") would clip to 255
        return Image.fromarray(_grey_to_uint8(mode, np.asarray(im)), "L").convert("RGB")
    raise Unreadable(f"image mode {mode} is not supported")


def _grey_to_uint8(mode: str, values: np.ndarray) -> np.ndarray:
    """Wide greyscale to 0..255, rounded: 16-bit (I;16*, and I within 0..65535) by 255/65535,
    float (F) within 0..1 by 255; other ranges have no known meaning and are refused."""
    if mode == "F":
        if not (np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0):
            raise Unreadable(f"mode F (float) with values {values.min():g}..{values.max():g}; "
                             "only 0..1 is understood")
        return np.floor(values.astype(np.float64) * 255.0 + 0.5).astype(np.uint8)
    if mode == "I" and (values.min() < 0 or values.max() > 65535):
        raise Unreadable(f"mode I (32-bit) with values {values.min()}..{values.max()}; "
                         "only 0..65535 (16-bit) is understood")
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
