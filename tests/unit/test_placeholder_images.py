"""Placeholder artwork is valid PNG at the sizes Wallet asks for."""

from __future__ import annotations

import struct
import zlib

import pytest

from walletsvc.apple.images import placeholder_images, solid_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode(png: bytes) -> tuple[int, int, list[bytes]]:
    """Check signature, chunk CRCs and layout; return width, height and RGB rows."""
    assert png[:8] == PNG_SIGNATURE
    offset, chunks = 8, []
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        data = png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, kind
        chunks.append((kind, data))
        offset += 12 + length
    assert offset == len(png)
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    stride = 1 + 3 * width
    assert len(raw) == stride * height
    rows = [raw[y * stride : (y + 1) * stride] for y in range(height)]
    assert all(row[0] == 0 for row in rows)
    return width, height, [row[1:] for row in rows]


def pixel(rows: list[bytes], x: int, y: int) -> tuple[int, ...]:
    return tuple(rows[y][3 * x : 3 * x + 3])


def test_solid_png_is_one_colour() -> None:
    width, height, rows = decode(solid_png(7, 3, (1, 2, 3)))
    assert (width, height) == (7, 3)
    assert all(row == bytes((1, 2, 3)) * 7 for row in rows)


def test_mark_sits_in_the_centre_on_the_background() -> None:
    width, height, rows = decode(solid_png(58, 58, (0, 0, 0), mark=(255, 255, 255)))
    assert pixel(rows, width // 2, height // 2) == (255, 255, 255)
    for x, y in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)):
        assert pixel(rows, x, y) == (0, 0, 0)


def test_placeholders_have_the_wallet_sizes() -> None:
    images = placeholder_images((10, 20, 30), (200, 100, 0))
    sizes = {name: decode(png)[:2] for name, png in images.items()}
    assert sizes == {
        "icon.png": (29, 29),
        "icon@2x.png": (58, 58),
        "icon@3x.png": (87, 87),
        "logo.png": (160, 50),
        "logo@2x.png": (320, 100),
        "logo@3x.png": (480, 150),
        "strip.png": (375, 144),
        "strip@2x.png": (750, 288),
        "strip@3x.png": (1125, 432),
    }


def test_placeholder_strip_is_a_band_between_the_program_colours() -> None:
    images = placeholder_images((0, 0, 0), (200, 100, 50))
    _, _, rows = decode(images["strip.png"])
    tint = pixel(rows, 0, 0)
    assert tint != (0, 0, 0) and tint != (200, 100, 50)
    assert all(row == bytes(tint) * 375 for row in rows)


@pytest.mark.parametrize(
    ("width", "height", "rgb"),
    [(0, 10, (0, 0, 0)), (10, -1, (0, 0, 0)), (10, 10, (0, 0, 256)), (10, 10, (0, 0))],
)
def test_impossible_images_are_refused(width: int, height: int, rgb: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        solid_png(width, height, rgb)
