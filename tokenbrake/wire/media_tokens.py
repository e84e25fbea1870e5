"""Upper bounds of the input tokens a provider bills for images, audio and documents.

Sizes are read from the data the request carries: an image's width and height from its
header bytes (PNG, GIF, WebP, JPEG), a WAV's duration from its byte rate, a PDF's page count
from its page objects. What cannot be measured (an http URL, a file id, an unreadable header)
is counted at the provider's most for one such input, so a reservation never falls short of
the bill.

Formulas, from the providers' documentation:
- OpenAI images: `low` 85 tokens; `high` and `auto` fit into 2048×2048, shortest side down to
  768, then 85 + 170 per 512-pixel tile (at most 1,445); gpt-4o-mini 2,833 + 5,667 a tile; the
  patch-counted models (gpt-4.1-mini and -nano, gpt-5-mini and -nano, o4-mini) a token per
  32-pixel patch, at most 1,536, times the model's multiplier (1.62 to 2.46).
- Anthropic images: width × height / 750 after its resize, at most 1,600.
- OpenAI input audio: 10 tokens a second (600 a minute); an MP3 at the lowest MPEG bit rate
  (8 kbit/s), since its duration is not in a header.
- PDFs (both): each page's text and an image of it; a page's text counted at 3,000 tokens
  (the top of Anthropic's 1,500–3,000 per page); a PDF whose pages cannot be counted at the
  providers' 100-page limit. Other files: one token per byte of the file.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Callable
from math import ceil

OPENAI_LOW_DETAIL = 85
OPENAI_BASE, OPENAI_PER_TILE = 85, 170
MAX_TILES = 8  # a 768×2048 image: 2×4 tiles
OPENAI_IMAGE_MAX = OPENAI_BASE + OPENAI_PER_TILE * MAX_TILES
MAX_PATCHES = 1536
ANTHROPIC_IMAGE_MAX = 1600
AUDIO_TOKENS_PER_S = 10
MP3_MIN_BYTES_PER_S = 8000 // 8
TEXT_TOKENS_PER_PAGE = 3000
MAX_PAGES = 100
# Base64 characters enough for a PNG's, GIF's or WebP's size; for a JPEG's, most often.
HEAD_CHARS = 64
JPEG_HEAD_CHARS = 4096

_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_COUNT = re.compile(rb"/Count\s+(\d+)")


def decode(data: str, start: int = 0, limit: int | None = None) -> bytes | None:
    """The bytes of the base64 in `data` from `start` (only its first `limit` characters', a
    multiple of 4, when given), or None if it is not base64."""
    try:
        return base64.b64decode(data[start:] if limit is None else data[start : start + limit])
    except (binascii.Error, ValueError):
        return None


def data_url(url: str) -> tuple[str, int] | None:
    """The media type of a `data:TYPE;base64,DATA` URL and where its data starts, or None.
    (An offset, since slicing out the data would copy it all, for a size read from its head.)"""
    comma = url.find(",", 5, 5 + 256) if url.startswith("data:") else -1
    if comma < 0 or not url.endswith(";base64", 5, comma):
        return None
    return url[5 : comma - len(";base64")], comma + 1


def image_size(data: str, start: int = 0) -> tuple[int, int] | None:
    """Width and height of a base64 PNG, GIF, WebP or JPEG from `start` in `data`, from its
    header: the first few dozen bytes, but a JPEG's frame header, which may follow a large
    EXIF block."""
    head = decode(data, start, HEAD_CHARS)
    if head is None or len(head) < 4:
        return None
    if head[:2] != b"\xff\xd8":
        return _header_size(head)
    size = _jpeg_size(decode(data, start, JPEG_HEAD_CHARS) or b"")
    if size is None and len(data) - start > JPEG_HEAD_CHARS:
        size = _jpeg_size(decode(data, start) or b"")
    return size


def _header_size(head: bytes) -> tuple[int, int] | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head)
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """From the first start-of-frame marker (SOF0..SOF15 but DHT, JPG and DAC)."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            at += 1 if marker == 0xFF else 2  # fill bytes and markers without a length
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    return None


def openai_image_tokens(size: tuple[int, int] | None, detail: str | None) -> int:
    """OpenAI's tile formula, as its gpt-4o, gpt-4.1, gpt-5 and most OpenAI-compatible servers count."""
    return _tiles(size, detail, OPENAI_BASE, OPENAI_PER_TILE)


def _tiles(size: tuple[int, int] | None, detail: str | None, base: int, per_tile: int) -> int:
    if detail == "low":
        return base
    if size is None or min(size) <= 0:
        return base + per_tile * MAX_TILES
    fit = min(1.0, 2048 / max(size))
    width, height = size[0] * fit, size[1] * fit
    shrink = min(1.0, 768 / min(width, height))
    tiles = ceil(width * shrink / 512) * ceil(height * shrink / 512)
    return base + per_tile * min(tiles, MAX_TILES)


def _patches(size: tuple[int, int] | None, multiplier: float) -> int:
    """OpenAI's 32-pixel patches (at most 1,536) times the model's multiplier; `detail` aside."""
    patches = MAX_PATCHES if size is None else min(ceil(size[0] / 32) * ceil(size[1] / 32), MAX_PATCHES)
    return ceil(patches * multiplier)


def anthropic_image_tokens(size: tuple[int, int] | None, detail: str | None = None) -> int:
    if size is None:
        return ANTHROPIC_IMAGE_MAX
    return min(ceil(size[0] * size[1] / 750), ANTHROPIC_IMAGE_MAX)


ImageRule = Callable[[tuple[int, int] | None, str | None], int]
# OpenAI models that bill images otherwise than the tile formula, by the start of their name.
_OPENAI_RULES: tuple[tuple[str, ImageRule], ...] = (
    ("gpt-4o-mini", lambda size, detail: _tiles(size, detail, 2833, 5667)),
    ("gpt-4.1-mini", lambda size, detail: _patches(size, 1.62)),
    ("gpt-4.1-nano", lambda size, detail: _patches(size, 2.46)),
    ("gpt-5-mini", lambda size, detail: _patches(size, 1.62)),
    ("gpt-5-nano", lambda size, detail: _patches(size, 2.46)),
    ("o4-mini", lambda size, detail: _patches(size, 1.72)),
)


def image_rule(kind: str, model: str) -> ImageRule:
    """How the model named `model` on an upstream speaking `kind` counts an image's tokens."""
    if kind == "anthropic":
        return anthropic_image_tokens
    return next((rule for prefix, rule in _OPENAI_RULES if model.startswith(prefix)), openai_image_tokens)


def audio_tokens(data: str, audio_format: str) -> int:
    """A base64 WAV's tokens from its byte rate; any other format's at the lowest MP3 bit rate."""
    size = len(data) * 3 // 4
    head = decode(data, 0, HEAD_CHARS) or b""
    rate = struct.unpack("<I", head[28:32])[0] if audio_format == "wav" and head[:4] == b"RIFF" and len(head) >= 32 else 0
    rate = rate if rate >= MP3_MIN_BYTES_PER_S else MP3_MIN_BYTES_PER_S
    return ceil(size / rate * AUDIO_TOKENS_PER_S)


def pdf_pages(data: str) -> int:
    """Pages of a base64 PDF: its page objects, or its page trees' counts if more; the
    providers' limit when compressed object streams may hide pages that neither shows."""
    raw = decode(data) or b""
    counts = [int(count) for count in _COUNT.findall(raw)]
    pages = max([len(_PAGE.findall(raw)), *counts])
    if not pages or (b"/ObjStm" in raw and not counts):
        return MAX_PAGES
    return pages


def document_tokens(media_type: str | None, data: str | None, page_image: int) -> int:
    """A base64 file's tokens: a PDF's pages, text and page images; another file's bytes."""
    if data is None:
        return MAX_PAGES * (TEXT_TOKENS_PER_PAGE + page_image)
    if media_type == "application/pdf" or (decode(data, 0, 8) or b"").startswith(b"%PDF"):
        return pdf_pages(data) * (TEXT_TOKENS_PER_PAGE + page_image)
    return len(data) * 3 // 4
