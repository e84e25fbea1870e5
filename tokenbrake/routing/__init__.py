"""Routing: send each request to the cheapest model that can serve it (issue 6)."""
