"""OpenAI's published request shapes for Chat Completions and Embeddings, as far as the gateway
reads or forwards them (the API reference's types; unknown extra fields pass through).

A content part of a type not listed here is refused: the gateway could not count what it
bills, and OpenAI itself takes no other.
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
class TextPart(TypedDict):
    type: Literal["text"]
    text: str


@shape
class RefusalPart(TypedDict):
    type: Literal["refusal"]
    refusal: str


@shape
class ImageURL(TypedDict):
    url: str
    detail: NotRequired[Literal["auto", "low", "high"] | None]


@shape
class ImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: ImageURL


@shape
class InputAudio(TypedDict):
    data: str
    format: Literal["wav", "mp3"]


@shape
class AudioPart(TypedDict):
    type: Literal["input_audio"]
    input_audio: InputAudio


@shape
class File(TypedDict):
    file_data: NotRequired[str | None]
    file_id: NotRequired[str | None]
    filename: NotRequired[str | None]


@shape
class FilePart(TypedDict):
    type: Literal["file"]
    file: File


UserPart = by_type("a content part of type text, image_url, input_audio or file",
                   text=TextPart, image_url=ImagePart, input_audio=AudioPart, file=FilePart)
AssistantPart = by_type("a content part of type text or refusal", text=TextPart, refusal=RefusalPart)
TextOnly = by_type("a content part of type text", text=TextPart)


def content(part: Any) -> Any:
    return by_json_kind("a string or an array of content parts", string=str, array=list[part])


@shape
class Function(TypedDict):
    name: str
    arguments: str


@shape
class FunctionCall(TypedDict):
    id: str
    type: NotRequired[Literal["function"]]
    function: Function


@shape
class CustomCall(TypedDict):
    id: str
    type: Literal["custom"]
    custom: JSONObject


ToolCall = by_type("a tool call of type function or custom", default="function", function=FunctionCall, custom=CustomCall)


@shape
class SystemMessage(TypedDict):
    role: Literal["system", "developer"]
    content: content(TextOnly)
    name: NotRequired[str | None]


@shape
class UserMessage(TypedDict):
    role: str
    content: NotRequired[content(UserPart) | None]
    name: NotRequired[str | None]


@shape
class AssistantMessage(TypedDict):
    role: Literal["assistant"]
    content: NotRequired[content(AssistantPart) | None]
    name: NotRequired[str | None]
    refusal: NotRequired[str | None]
    tool_calls: NotRequired[list[ToolCall] | None]
    function_call: NotRequired[JSONObject | None]
    audio: NotRequired[JSONObject | None]


@shape
class ToolMessage(TypedDict):
    role: Literal["tool"]
    content: content(TextOnly)
    tool_call_id: str


def _role(message: Any) -> str | None:
    role = message.get("role") if isinstance(message, dict) else None
    if not isinstance(role, str):
        return None
    return {"developer": "system", "assistant": "assistant", "tool": "tool", "system": "system"}.get(role, "user")


# Roles other than these four (OpenAI's legacy `function`, a local server's own) are held to the
# user message's shape: they still carry content the gateway must count.
Message = one_of(_role, "a message object with a string role",
                 system=SystemMessage, user=UserMessage, assistant=AssistantMessage, tool=ToolMessage)


@shape
class FunctionDefinition(TypedDict):
    name: str
    description: NotRequired[str | None]
    parameters: NotRequired[JSONObject | None]
    strict: NotRequired[bool | None]


@shape
class FunctionTool(TypedDict):
    type: Literal["function"]
    function: FunctionDefinition


@shape
class CustomTool(TypedDict):
    type: Literal["custom"]
    custom: JSONObject


Tool = by_type("a tool of type function or custom", function=FunctionTool, custom=CustomTool)


@shape
class Named(TypedDict):
    name: str


@shape
class NamedFunction(TypedDict):
    type: Literal["function"]
    function: Named


@shape
class NamedCustom(TypedDict):
    type: Literal["custom"]
    custom: Named


@shape
class AllowedTools(TypedDict):
    type: Literal["allowed_tools"]
    allowed_tools: JSONObject


ToolChoiceObject = by_type("a tool choice of type function, custom or allowed_tools",
                           function=NamedFunction, custom=NamedCustom, allowed_tools=AllowedTools)
ToolChoice = by_json_kind("'none', 'auto', 'required' or a tool choice object",
                          string=Literal["none", "auto", "required"], object=ToolChoiceObject)


@shape
class JSONSchema(TypedDict):
    name: str
    description: NotRequired[str | None]
    schema: NotRequired[JSONObject | None]
    strict: NotRequired[bool | None]


@shape
class PlainFormat(TypedDict):
    type: Literal["text", "json_object"]


@shape
class SchemaFormat(TypedDict):
    type: Literal["json_schema"]
    json_schema: JSONSchema


ResponseFormat = by_type("a response format of type text, json_object or json_schema",
                         text=PlainFormat, json_object=PlainFormat, json_schema=SchemaFormat)


@shape
class StreamOptions(TypedDict):
    include_usage: NotRequired[bool | None]
    include_obfuscation: NotRequired[bool | None]


Stop = by_json_kind("a string or an array of strings", string=str, array=list[str])
Penalty = Annotated[Number, Field(ge=-2, le=2)]


@shape
class ChatRequest(TypedDict):
    model: NonEmptyStr
    messages: Annotated[list[Message], Field(min_length=1)]
    stream: NotRequired[bool | None]
    stream_options: NotRequired[StreamOptions | None]
    max_tokens: NotRequired[PositiveInt | None]
    max_completion_tokens: NotRequired[PositiveInt | None]
    n: NotRequired[Annotated[int, Field(ge=1, le=128)] | None]
    temperature: NotRequired[Annotated[Number, Field(ge=0, le=2)] | None]
    top_p: NotRequired[Annotated[Number, Field(ge=0, le=1)] | None]
    frequency_penalty: NotRequired[Penalty | None]
    presence_penalty: NotRequired[Penalty | None]
    stop: NotRequired[Stop | None]
    logit_bias: NotRequired[dict[str, Annotated[int, Field(ge=-100, le=100)]] | None]
    logprobs: NotRequired[bool | None]
    top_logprobs: NotRequired[Annotated[int, Field(ge=0, le=20)] | None]
    seed: NotRequired[int | None]
    tools: NotRequired[list[Tool] | None]
    tool_choice: NotRequired[ToolChoice | None]
    parallel_tool_calls: NotRequired[bool | None]
    response_format: NotRequired[ResponseFormat | None]
    metadata: NotRequired[dict[str, str] | None]
    user: NotRequired[str | None]
    safety_identifier: NotRequired[str | None]
    store: NotRequired[bool | None]
    modalities: NotRequired[list[str] | None]


def _input_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if not isinstance(value, list):
        return None
    if not value:
        return "texts"  # said to be empty
    first = value[0]
    return "tokens" if isinstance(first, int) and not isinstance(first, bool) else "arrays" if isinstance(first, list) else "texts"


EmbeddingInput = one_of(
    _input_kind, "a string, an array of strings, or token arrays", text=str,
    texts=Annotated[list[str], Field(min_length=1)], tokens=list[int], arrays=list[Annotated[list[int], Field(min_length=1)]],
)


@shape
class EmbeddingsRequest(TypedDict):
    model: NonEmptyStr
    input: EmbeddingInput
    dimensions: NotRequired[PositiveInt | None]
    encoding_format: NotRequired[Literal["float", "base64"] | None]
    user: NotRequired[str | None]


chat_request = TypeAdapter(ChatRequest)
embeddings_request = TypeAdapter(EmbeddingsRequest)
