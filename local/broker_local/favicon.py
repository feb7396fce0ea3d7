"""A 16x16 PNG favicon for the local console and the Zoho stand-in, so browsers log no 404 for it.

Built here from a colour (standard library only: the stand-in also runs on its own under sam local).
"""

from __future__ import annotations

import struct
import zlib


def square_png(rgb: tuple[int, int, int], size: int = 16) -> bytes:
    """A PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


CONSOLE = square_png((0x0B, 0x57, 0xD0))  # the console's blue
STANDIN = square_png((0xE4, 0x25, 0x27))  # a Zoho-ish red, to tell the stand-in's tab apart
