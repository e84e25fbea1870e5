"""Tools around the gateway, never imported by what serves requests: the provider emulator
(emulator/), the demo and its scenes (demo.py, demo_scenes/), the probe (probe.py) and the
launcher that starts a gateway in a subprocess (launch.py).

May import: any runtime room; nothing but the CLI imports tools/.
"""
