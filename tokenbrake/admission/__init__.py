"""The rules that decide whether a request may go, written once and applied by the stages:
keys (auth.py), limit rules (limit_rules.py), budget rules and their reports (budget_rules.py),
session rules (session_rules.py).

May import: routing/ and every room below it.
"""
