"""Evaluation sets and quality scores, never imported by what serves requests: the loop-detection
sessions (loop_sessions/), the router's quality on held-out data (router.py, routing_quality.py),
and where the shared evaluation data is found (shared_data.py).

May import: any runtime room; nothing but the CLI imports evaluation/.
"""
