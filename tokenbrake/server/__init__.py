"""The HTTP layer: it only wires routes to the pipeline.

May import: gateway/ and every room below it.
"""
