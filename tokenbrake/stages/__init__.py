"""Pipeline stages: one small class per job, each with a `before` and an `after` step."""
