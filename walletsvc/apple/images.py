"""Write small placeholder PNGs with the standard library alone (no Pillow).

Used for the development demo and for programs created without artwork; PNG layout per
https://www.w3.org/TR/png-3/ (8-bit truecolour, no interlace, filter type 0 on every row).
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["placeholder_images", "solid_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE_RGB = 2

# Apple's point sizes: icon 29x29 pt, logo at most 160x50 pt, at 1x, 2x and 3x.
_SIZES: dict[str, tuple[int, int]] = {
    "icon.png": (29, 29),
    "icon@2x.png": (58, 58),
    "icon@3x.png": (87, 87),
    "logo.png": (160, 50),
    "logo@2x.png": (320, 100),
    "logo@3x.png": (480, 150),
}
# The strip sits behind the primary fields. Apple's guide allots 375x144 pt to gift cards and
# coupons and 375x123 pt to other passes; one plain 375x144 strip serves store cards too,
# since a solid colour loses nothing when Wallet crops it.
_STRIP_SIZES: dict[str, tuple[int, int]] = {
    "strip.png": (375, 144),
    "strip@2x.png": (750, 288),
    "strip@3x.png": (1125, 432),
}
_STRIP_TINT = 0.18  # how far the strip leans from the background toward the foreground


def solid_png(
    width: int,
    height: int,
    rgb: tuple[int, int, int],
    *,
    mark: tuple[int, int, int] | None = None,
) -> bytes:
    """Return a PNG filled with `rgb`, with an optional centred disc in the `mark` colour."""
    if width < 1 or height < 1:
        raise ValueError("width and height must be at least 1")
    background = _pixel(rgb)
    if mark is None:
        row = b"\x00" + background * width
        raw = row * height
    else:
        raw = _disc_rows(width, height, background, _pixel(mark))
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE_RGB, 0, 0, 0)
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw, 9)),
            _chunk(b"IEND", b""),
        )
    )


def placeholder_images(
    background: tuple[int, int, int], foreground: tuple[int, int, int]
) -> dict[str, bytes]:
    """Return icon, logo and strip PNGs at 1x, 2x and 3x in the given colours."""
    images = {
        name: solid_png(width, height, background, mark=foreground)
        for name, (width, height) in _SIZES.items()
    }
    tint = _blend(background, foreground, _STRIP_TINT)
    images.update(
        (name, solid_png(width, height, tint)) for name, (width, height) in _STRIP_SIZES.items()
    )
    return images


def _blend(
    base: tuple[int, int, int], toward: tuple[int, int, int], share: float
) -> tuple[int, int, int]:
    r, g, b = (round(a + (z - a) * share) for a, z in zip(base, toward, strict=True))
    return r, g, b


def _pixel(rgb: tuple[int, int, int]) -> bytes:
    if len(rgb) != 3 or any(not 0 <= channel <= 255 for channel in rgb):
        raise ValueError(f"colour must be three channels in 0..255, not {rgb!r}")
    return bytes(rgb)


def _disc_rows(width: int, height: int, background: bytes, mark: bytes) -> bytes:
    # A disc reads as a logo mark at any aspect ratio; its radius follows the short side.
    cx, cy = width / 2, height / 2
    radius = min(width, height) * 0.32
    rows = []
    for y in range(height):
        dy = y + 0.5 - cy
        span = radius * radius - dy * dy
        if span <= 0:
            rows.append(b"\x00" + background * width)
            continue
        half = span**0.5
        start = max(0, round(cx - half))
        end = min(width, round(cx + half))
        rows.append(
            b"\x00" + background * start + mark * (end - start) + background * (width - end)
        )
    return b"".join(rows)


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
