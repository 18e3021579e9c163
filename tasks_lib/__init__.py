"""Pure ML layer: task registry, task modules, data, models, engine and metrics.

Nothing here imports Prefect, MLflow, DVC, Great Expectations or BentoML.
"""
