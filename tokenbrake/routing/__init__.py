"""Where a request goes: virtual models and the strategies that pick a tier (virtual.py,
strategies.py), each model's targets and fallbacks (targets.py), the cascade that tries a cheap
tier first and checks its answer (cascade.py, checks.py), the routers a config loads
(routers.py), and the outcomes kept for training.

May import: upstream/ and every room below it.
"""
