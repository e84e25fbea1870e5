"""The web dashboard at /dashboard: who spent what on which model, what the controls saved,
how close each budget is to its cap, live agent sessions and recent requests, drawn in the
browser from the insight API (/admin/insight/) and the admin reads (/admin/budgets,
/admin/sessions).

It serves pages (templates/), its own script and style (static/) and plotly.js from the
installed `plotly` package (the `dashboard` extra; without it the pages show tables only),
and the login that opens them: the master key or a viewer key, kept as a random server-side
login behind an HttpOnly, SameSite=Strict cookie, with a CSRF token for every action
(logins.py). The server wires its routes into the gateway and into `tokenbrake dashboard`.

May import: gateway/ and every room below it.
"""
