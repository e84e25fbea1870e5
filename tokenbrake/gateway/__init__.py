"""The running gateway: the application state built at start-up and passed explicitly (state.py),
the pipeline's assembly, the one place a request's stages are put in order (pipeline.py), and
the access log line each request leaves (access_log.py).

May import: stages/ and every room below it.
"""
