"""What travels on the wire, and nothing else: the error bodies each SDK reads (errors.py), request
validation against the providers' published shapes (validate.py and the *_shapes.py), SSE
framing, token counting and request sizes, retry headers, and the translation between the
OpenAI and Anthropic formats (translate/).

May import: the package root (core, config).
"""
