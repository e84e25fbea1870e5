"""Images, audio and documents in a request are counted at no less than what the provider
bills (media_tokens.py, tokens.py): sizes read from the data's own header bytes, the
providers' formulas applied to them, and the provider's most for what cannot be measured."""

import base64
import struct

import pytest

from tokenbrake.core import Endpoint, Format, RequestContext, Target
from tokenbrake.wire import media_tokens, request_size
from tokenbrake.wire.tokens import count_request_input


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"


def jpeg(width: int, height: int, exif: int = 16) -> bytes:
    app1 = b"\xff\xe1" + struct.pack(">H", exif + 2) + b"\x00" * exif
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x00" * 9
    return b"\xff\xd8" + app1 + b"\xff\xdb" + struct.pack(">H", 4) + b"\x00\x00" + sof0 + b"\xff\xd9"


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    body = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + bits.to_bytes(4, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def webp_vp8(width: int, height: int) -> bytes:
    frame = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    body = b"VP8 " + struct.pack("<I", len(frame)) + frame
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def wav(seconds: float, rate: int = 16000) -> bytes:
    data = b"\x00" * int(rate * 2 * seconds)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data


def pdf(pages: int) -> bytes:
    objects = b"".join(b"%d 0 obj << /Type /Page /Parent 2 0 R >> endobj\n" % (3 + i) for i in range(pages))
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages >> endobj\n" + objects + b"%%EOF"


@pytest.mark.parametrize(("image", "size"), [
    (png(1024, 768), (1024, 768)), (gif(320, 200), (320, 200)), (jpeg(4032, 3024), (4032, 3024)),
    (jpeg(800, 600, exif=20_000), (800, 600)), (webp_vp8x(1920, 1080), (1920, 1080)),
    (webp_vp8l(640, 480), (640, 480)), (webp_vp8(300, 150), (300, 150)),
])
def test_an_images_size_is_read_from_its_header(image, size):
    assert media_tokens.image_size(b64(image)) == size


def test_data_that_is_no_image_has_no_size():
    assert media_tokens.image_size(b64(b"hello, world")) is None
    assert media_tokens.image_size("not base64 at all!") is None


@pytest.mark.parametrize(("size", "detail", "tokens"), [
    ((1024, 1024), "high", 765),   # OpenAI's documented examples
    ((2048, 4096), "high", 1105),
    ((4096, 8192), "low", 85),
    ((512, 512), "auto", 255),     # auto may be high: counted as high
    ((768, 2048), "high", 1445),   # the most tiles any image gets
    (None, "high", 1445),
    (None, "low", 85),
])
def test_openai_images_are_counted_by_the_tile_formula(size, detail, tokens):
    assert media_tokens.openai_image_tokens(size, detail) == tokens


@pytest.mark.parametrize(("size", "tokens"), [((1000, 1000), 1334), ((200, 200), 54), ((4000, 3000), 1600), (None, 1600)])
def test_anthropic_images_are_counted_by_pixels_over_750_up_to_its_most(size, tokens):
    assert media_tokens.anthropic_image_tokens(size) == tokens


def openai_request(*parts: dict) -> dict:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, *parts]}]}


def anthropic_request(*blocks: dict) -> dict:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, *blocks]}]}


def added(format_name: str, body: dict, bare: dict) -> int:
    return count_request_input(format_name, body) - count_request_input(format_name, bare)


def test_an_openai_image_adds_its_tiles_to_the_count():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png(1024, 1024))}}
    assert added("openai", openai_request(image), openai_request()) >= 765


def test_an_openai_image_by_url_is_counted_at_the_most_an_image_costs():
    image = {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg"}}
    assert added("openai", openai_request(image), openai_request()) >= media_tokens.OPENAI_IMAGE_MAX


def test_an_anthropic_image_adds_its_pixels_over_750():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(png(1000, 1000))}}
    assert added("anthropic", anthropic_request(image), anthropic_request()) >= 1334


def test_an_anthropic_image_by_url_is_counted_at_its_most():
    image = {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}}
    assert added("anthropic", anthropic_request(image), anthropic_request()) >= 1600


def test_images_inside_a_tool_result_are_counted():
    image = {"type": "image", "source": {"type": "url", "url": "https://example.test/chart.png"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [image]}
    assert added("anthropic", anthropic_request(result), anthropic_request()) >= 1600


def test_wav_audio_is_counted_at_ten_tokens_a_second():
    audio = {"type": "input_audio", "input_audio": {"data": b64(wav(3.0)), "format": "wav"}}
    assert added("openai", openai_request(audio), openai_request()) >= 30


def test_mp3_audio_is_counted_at_the_lowest_bit_rate():
    data = b64(b"\xff\xfb\x90\x64" + b"\x00" * 16_000)  # 16 kB: at most 16 s at 8 kbit/s
    audio = {"type": "input_audio", "input_audio": {"data": data, "format": "mp3"}}
    assert added("openai", openai_request(audio), openai_request()) >= 160


def test_a_pdf_is_counted_per_page_with_its_page_images():
    assert media_tokens.pdf_pages(b64(pdf(3))) == 3
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(pdf(3))}}
    per_page = media_tokens.TEXT_TOKENS_PER_PAGE + media_tokens.ANTHROPIC_IMAGE_MAX
    assert added("anthropic", anthropic_request(document), anthropic_request()) >= 3 * per_page


def test_a_pdf_whose_pages_hide_in_object_streams_is_counted_at_the_page_limit():
    hidden = b"%PDF-1.5\n1 0 obj << /Type /ObjStm /N 40 /First 9 /Filter /FlateDecode >> stream\nxx\nendstream\n%%EOF"
    assert media_tokens.pdf_pages(b64(hidden)) == media_tokens.MAX_PAGES


def test_an_openai_file_is_counted_from_its_data_and_at_the_limit_by_id():
    by_data = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64," + b64(pdf(2))}}
    by_id = {"type": "file", "file": {"file_id": "file-abc"}}
    per_page = media_tokens.TEXT_TOKENS_PER_PAGE + media_tokens.OPENAI_IMAGE_MAX
    assert added("openai", openai_request(by_data), openai_request()) >= 2 * per_page
    assert added("openai", openai_request(by_id), openai_request()) >= media_tokens.MAX_PAGES * per_page


def test_a_text_document_is_counted_as_its_text():
    text = "alpha beta gamma " * 50
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
    assert added("anthropic", anthropic_request(document), anthropic_request()) >= 150


def test_a_block_of_a_type_unknown_here_is_counted_by_its_json():
    block = {"type": "web_search_tool_result", "tool_use_id": "s1", "content": [{"type": "x", "text": "word " * 100}]}
    assert added("anthropic", anthropic_request(block), anthropic_request()) >= 100


@pytest.mark.parametrize(("kind", "model", "size", "tokens"), [
    ("openai", "gpt-4o-mini-2024-07-18", (1024, 1024), 2833 + 5667 * 4),   # its documented 33× tiles
    ("openai", "gpt-4.1-mini", (1024, 1024), 1659),                        # 1,024 patches × 1.62
    ("openai", "gpt-4.1-nano", None, 3779),                                # 1,536 patches × 2.46
    ("openai", "o4-mini", (10_000, 10_000), 2642),                         # at most 1,536 patches × 1.72
    ("openai", "gpt-4o", (1024, 1024), 765),
    ("openai", "qwen2.5-vl-7b", (1024, 1024), 765),                        # a local server: the tile formula
    ("anthropic", "claude-sonnet-4-5", (1000, 1000), 1334),
])
def test_each_model_counts_an_image_by_its_own_rule(kind, model, size, tokens):
    assert media_tokens.image_rule(kind, model)(size, "high") == tokens


def ctx_for(fmt, body: dict, *targets: tuple[str, Format, str]) -> RequestContext:
    ctx = RequestContext(format=fmt, endpoint=Endpoint.CHAT, body=body, headers={})
    ctx.targets = [Target(name, "u", kind, upstream_model) for name, kind, upstream_model in targets]
    return ctx


def test_the_count_takes_the_dearest_rule_of_the_models_that_may_serve_it():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png(1024, 1024))}}
    body = openai_request(image)
    alone = request_size.input_tokens(ctx_for(Format.OPENAI, body, ("big", Format.OPENAI, "gpt-4o")))
    with_fallback = request_size.input_tokens(ctx_for(
        Format.OPENAI, body, ("big", Format.OPENAI, "gpt-4o"), ("cheap", Format.OPENAI, "gpt-4o-mini")))
    assert alone - count_request_input("openai", openai_request()) == 765
    assert with_fallback - alone == 2833 + 5667 * 4 - 765


def test_an_image_sent_across_formats_is_counted_by_the_serving_providers_rule():
    # 200×200: Anthropic bills 54 tokens, OpenAI's tile formula 255.
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(png(200, 200))}}
    body = anthropic_request(image)
    to_openai = request_size.input_tokens(ctx_for(Format.ANTHROPIC, body, ("gpt", Format.OPENAI, "gpt-4o")))
    assert to_openai - count_request_input("anthropic", anthropic_request()) == 255
    assert count_request_input("anthropic", body) - count_request_input("anthropic", anthropic_request()) == 54
