"""Going upstream: one call with its retries and fallbacks (call.py, dispatch.py), the bodies
each upstream expects and gives back (bodies.py), relaying a stream while counting it
(relay.py), and one provider class per wire format (providers/).

May import: settlement/ and every room below it.
"""
