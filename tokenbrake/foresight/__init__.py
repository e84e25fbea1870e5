"""Seeing spend ahead: where a scope's spend ends its period, with a prediction interval, and
when a budget runs out at the current pace.

forecast.py is the method, a pure function of an hourly cost series; outlook.py reads each
scope's series from the rollups and pairs scopes with the budgets in force. The CLI
(`tokenbrake forecast`) and the insight API (`/admin/insight/forecast`) call outlook.py.

May import: admission/ and every room below it.
"""
