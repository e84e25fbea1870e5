"""Anthropic's published request shapes for Messages and count_tokens, as far as the gateway
reads or forwards them (the API reference's types; unknown extra fields pass through).

Content blocks the gateway counts (text, image, document, tool use and results, thinking) are
checked field by field. Anthropic adds block types often (server tool results, search results,
containers) and clients send them back as they got them, so a block of another type needs only
a string `type`; it is counted by its JSON text (tokens.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

from tokenbrake.wire.request_shapes import (
    JSONObject,
    NonEmptyStr,
    Number,
    PositiveInt,
    by_json_kind,
    by_type,
    one_of,
    shape,
)


@shape
class TextBlock(TypedDict):
    type: Literal["text"]
    text: str


@shape
class Base64Image(TypedDict):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


@shape
class URLSource(TypedDict):
    type: Literal["url"]
    url: str


@shape
class FileSource(TypedDict):
    type: Literal["file"]
    file_id: str


ImageSource = by_type("an image source of type base64, url or file", base64=Base64Image, url=URLSource, file=FileSource)


@shape
class ImageBlock(TypedDict):
    type: Literal["image"]
    source: ImageSource


@shape
class Base64PDF(TypedDict):
    type: Literal["base64"]
    media_type: Literal["application/pdf"]
    data: str


@shape
class PlainText(TypedDict):
    type: Literal["text"]
    media_type: NotRequired[Literal["text/plain"]]
    data: str


TextOrImage = by_type("a content block of type text or image", text=TextBlock, image=ImageBlock)


@shape
class ContentSource(TypedDict):
    type: Literal["content"]
    content: by_json_kind("a string or an array of content blocks", string=str, array=list[TextOrImage])


DocumentSource = by_type("a document source of type base64, text, content, url or file",
                         base64=Base64PDF, text=PlainText, content=ContentSource, url=URLSource, file=FileSource)


@shape
class DocumentBlock(TypedDict):
    type: Literal["document"]
    source: DocumentSource
    title: NotRequired[str | None]
    context: NotRequired[str | None]


@shape
class OtherBlock(TypedDict):
    type: str


def _block_type(known: frozenset[str]) -> Any:
    def choose(block: Any) -> str | None:
        kind = block.get("type") if isinstance(block, dict) else None
        return None if not isinstance(kind, str) else kind if kind in known else "other"
    return choose


ResultBlock = one_of(_block_type(frozenset({"text", "image", "document"})), "a content block object with a string type",
                     text=TextBlock, image=ImageBlock, document=DocumentBlock, other=OtherBlock)


@shape
class ToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: JSONObject


@shape
class ToolResultBlock(TypedDict):
    type: Literal["tool_result"]
    tool_use_id: str
    content: NotRequired[by_json_kind("a string or an array of content blocks", string=str, array=list[ResultBlock]) | None]
    is_error: NotRequired[bool | None]


@shape
class ThinkingBlock(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: NotRequired[str]


@shape
class RedactedThinkingBlock(TypedDict):
    type: Literal["redacted_thinking"]
    data: str


_KNOWN = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"})
Block = one_of(_block_type(_KNOWN), "a content block object with a string type",
               text=TextBlock, image=ImageBlock, document=DocumentBlock, tool_use=ToolUseBlock,
               tool_result=ToolResultBlock, thinking=ThinkingBlock, redacted_thinking=RedactedThinkingBlock,
               other=OtherBlock)


@shape
class Message(TypedDict):
    role: str
    content: by_json_kind("a string or an array of content blocks", string=str, array=list[Block])


@shape
class CustomTool(TypedDict):
    name: str
    input_schema: JSONObject
    description: NotRequired[str | None]


@shape
class ServerTool(TypedDict):
    type: str
    name: str


def _tool_kind(tool: Any) -> str | None:
    if not isinstance(tool, dict):
        return None
    return "custom" if tool.get("type", "custom") == "custom" else "server"


# Server tools (web search, bash, code execution...) are versioned types; each has a name.
Tool = one_of(_tool_kind, "a tool object", custom=CustomTool, server=ServerTool)


@shape
class ChoiceAuto(TypedDict):
    type: Literal["auto", "any", "none"]
    disable_parallel_tool_use: NotRequired[bool | None]


@shape
class ChoiceTool(TypedDict):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: NotRequired[bool | None]


ToolChoice = by_type("a tool choice of type auto, any, none or tool", auto=ChoiceAuto, any=ChoiceAuto, none=ChoiceAuto, tool=ChoiceTool)


@shape
class Thinking(TypedDict):
    type: str
    budget_tokens: NotRequired[PositiveInt | None]


@shape
class Metadata(TypedDict):
    user_id: NotRequired[str | None]


SystemBlock = by_type("a text block", text=TextBlock)
System = by_json_kind("a string or an array of text blocks", string=str, array=list[SystemBlock])


@shape
class CountTokensRequest(TypedDict):
    model: NonEmptyStr
    messages: Annotated[list[Message], Field(min_length=1)]
    system: NotRequired[System | None]
    tools: NotRequired[list[Tool] | None]
    tool_choice: NotRequired[ToolChoice | None]
    thinking: NotRequired[Thinking | None]


@shape
class MessagesRequest(CountTokensRequest):
    max_tokens: PositiveInt
    stream: NotRequired[bool | None]
    stop_sequences: NotRequired[list[str] | None]
    temperature: NotRequired[Annotated[Number, Field(ge=0, le=1)] | None]
    top_p: NotRequired[Annotated[Number, Field(ge=0, le=1)] | None]
    top_k: NotRequired[Annotated[int, Field(ge=0)] | None]
    metadata: NotRequired[Metadata | None]


messages_request = TypeAdapter(MessagesRequest)
count_tokens_request = TypeAdapter(CountTokensRequest)
