"""What travels on the wire, and nothing else: the error bodies each SDK reads (errors.py), request
validation against the providers' published shapes (validate.py and the *_shapes.py), SSE
framing, token counting and request sizes, retry headers, the translation between the
OpenAI and Anthropic formats (translate/), and OpenAI's Responses API in terms of Chat
Completions (responses_api/).

May import: the package root (core, config).
"""
