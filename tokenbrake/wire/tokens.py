"""Token counting with an exact BPE tokenizer that ships its encodings (works offline).

Counts for non-OpenAI models are estimates with the same encoding; they are used where an
upstream reports no usage and for input-size checks, never in place of reported usage.
Images, audio and documents are counted at media_tokens' upper bounds of what is billed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from tokenbrake.wire.media_tokens import (
    ImageRule,
    anthropic_image_tokens,
    audio_tokens,
    data_url,
    document_tokens,
    image_size,
    openai_image_tokens,
)

if TYPE_CHECKING:
    import bpe_openai

Images = Sequence[ImageRule]
# Without the models that will serve it, an image is counted as its own format's provider does.
OPENAI_IMAGES: Images = (openai_image_tokens,)
ANTHROPIC_IMAGES: Images = (anthropic_image_tokens,)

# Chat formats wrap each message in a few special tokens; these are OpenAI's documented
# overheads for its chat models, which we also use as the estimate for other models.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY_PRIMER = 3
DEFAULT_ENCODING = "o200k_base"


@lru_cache(maxsize=8)
def encoding(name: str = DEFAULT_ENCODING) -> bpe_openai.Encoding:
    """The encoding, loaded on first use: importing the tokenizer takes about a second, which
    a command that fails at start, or needs no counting, should not wait for."""
    import bpe_openai

    return bpe_openai.get_encoding(name)


def count_text(text: str, encoding_name: str = DEFAULT_ENCODING) -> int:
    if not text:
        return 0
    return len(encoding(encoding_name).encode_ordinary(text))


def _content_tokens(content: Any, images: Images) -> int:
    """The tokens of an OpenAI or Anthropic message content (a string or a list of parts):
    its text counted in one go, its images, audio and documents by media_tokens' bounds, each
    image at the most any of `images` (the rules of the models that may serve it) counts."""
    texts: list[str] = []
    media = _gather(content, texts, images)
    return count_text("\n".join(texts)) + media


def _gather(content: Any, texts: list[str], images: Images) -> int:
    """Appends the text parts of `content` to `texts`; returns the tokens of its other parts."""
    if content is None:
        return 0
    if isinstance(content, str):
        texts.append(content)
        return 0
    media = 0
    for part in [content] if isinstance(content, dict) else content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in _TEXT_FIELDS:
            texts.append(str(part.get(_TEXT_FIELDS[kind]) or ""))
        elif kind == "tool_use":
            texts.append(str(part.get("name", "")) + _json_text(part.get("input")))
        elif kind == "tool_result":
            media += _gather(part.get("content"), texts, images)
        elif kind == "document" and _field(part.get("source"), "type") in ("text", "content"):
            media += _gather(_field(part["source"], "data") or _field(part["source"], "content"), texts, images)
        elif kind in _MEDIA:
            media += _MEDIA[kind](part, images)
        else:  # a block whose type is not known here: its JSON holds what it says
            texts.append(_json_text(part))
    return media


def _field(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _image(size: tuple[int, int] | None, detail: Any, images: Images) -> int:
    return max(rule(size, detail if isinstance(detail, str) else None) for rule in images)


def _openai_image(part: dict[str, Any], images: Images) -> int:
    image = part.get("image_url")
    url = _field(image, "url")
    found = data_url(url) if isinstance(url, str) else None
    return _image(image_size(url, found[1]) if found else None, _field(image, "detail"), images)


def _anthropic_image(part: dict[str, Any], images: Images) -> int:
    source = part.get("source")
    data = _field(source, "data") if _field(source, "type") == "base64" else None
    return _image(image_size(data) if isinstance(data, str) else None, None, images)


def _openai_audio(part: dict[str, Any], images: Images) -> int:
    audio = part.get("input_audio")
    data = _field(audio, "data")
    return audio_tokens(data, _field(audio, "format")) if isinstance(data, str) else 0


def _openai_file(part: dict[str, Any], images: Images) -> int:
    file_data = _field(part.get("file"), "file_data")
    found = data_url(file_data) if isinstance(file_data, str) else None
    media_type, data = (found[0], file_data[found[1]:]) if found else (None, None)
    return document_tokens(media_type, data, page_image=_image(None, "high", images))


def _anthropic_document(part: dict[str, Any], images: Images) -> int:
    source = part.get("source")
    data = _field(source, "data") if _field(source, "type") == "base64" else None
    return document_tokens(_field(source, "media_type"), data if isinstance(data, str) else None,
                           page_image=_image(None, "high", images))


_TEXT_FIELDS = {"text": "text", "refusal": "refusal", "thinking": "thinking"}
_MEDIA = {
    "image_url": _openai_image, "image": _anthropic_image, "input_audio": _openai_audio,
    "file": _openai_file, "document": _anthropic_document,
}


def _json_text(value: Any) -> str:
    return "" if value is None else orjson.dumps(value).decode()


def count_openai_messages(messages: list[dict[str, Any]], tools: list | None = None, images: Images = OPENAI_IMAGES) -> int:
    total = TOKENS_PER_REPLY_PRIMER
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_text(str(message.get("role", "")))
        total += _content_tokens(message.get("content"), images)
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            total += count_text("\n".join(_call_text(call) for call in calls))
    if tools:
        total += count_text(_json_text(tools))
    return total


def _call_text(call: Any) -> str:
    """A tool call's name and arguments; a call of another kind (custom tools) as its JSON."""
    function = _field(call, "function")
    if isinstance(function, dict):
        return str(function.get("name", "")) + str(function.get("arguments", ""))
    return _json_text(call)


def count_anthropic_messages(
    messages: list[dict[str, Any]], system: Any = None, tools: list | None = None, images: Images = ANTHROPIC_IMAGES
) -> int:
    total = TOKENS_PER_REPLY_PRIMER
    if system:
        total += TOKENS_PER_MESSAGE + _content_tokens(system, images)
    for message in messages:
        total += TOKENS_PER_MESSAGE + _content_tokens(message.get("content"), images)
    if tools:
        total += count_text(_json_text(tools))
    return total


def count_request_input(format_name: str, body: dict[str, Any], images: Images | None = None) -> int:
    """Input tokens of a chat request body in the given wire format: the text estimated, media
    at no less than `images` (the serving models' rules; by default the format's) count them."""
    if format_name == "anthropic":
        return count_anthropic_messages(body.get("messages") or [], body.get("system"), body.get("tools"),
                                        images or ANTHROPIC_IMAGES)
    return count_openai_messages(body.get("messages") or [], body.get("tools"), images or OPENAI_IMAGES)
