"""Pipeline stages: one small class per job, each with a `before` and an `after` step.

May import: admission/ and every room below it. Only gateway/pipeline.py imports a stage.
"""
