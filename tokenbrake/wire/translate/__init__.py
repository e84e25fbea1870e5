"""Translation between the OpenAI Chat Completions and Anthropic Messages wire formats.

One module per job: `usage` (token counts both ways), `requests` (request bodies), `responses`
(non-streaming answers) and `streams` (incremental event translators). Everything works on
plain dicts, as decoded from JSON, and returns plain dicts ready to encode: no pydantic on the
hot path. What cannot be expressed in the other format raises `GatewayError(INVALID_REQUEST)`
naming the field, rather than being silently changed.
"""
