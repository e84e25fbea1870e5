"""What a call costs and who hears of it: prices from the maintained catalog (pricing.py), the
Prometheus metrics (metrics.py), budget threshold alerts (alerts.py).

May import: the package root, wire/, storage/, limits/, journal/, changes/, loops/ and router/.
"""
