"""The HTTP layer: it only wires routes to the pipeline."""
