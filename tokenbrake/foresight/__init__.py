"""Seeing spend ahead: where a scope's spend ends its period, with a prediction interval, and
when a budget runs out at the current pace.

forecast.py is the method, a pure function of an hourly cost series; outlook.py reads each
scope's series from the rollups and pairs scopes with the budgets in force. The CLI
(`tokenbrake forecast`) and the insight API (`/admin/insight/forecast`) call outlook.py.

And seeing spend depart: detector.py raises anomaly alerts from the rollups' minutes (each
scope against its usual for the hour of the week, usual.py; the kinds' tests, judge.py; the
alert, alert.py), fed live by watch.py, a gateway's background task, or from a file by
replay.py (`tokenbrake insight replay`).

May import: admission/ and every room below it.
"""
