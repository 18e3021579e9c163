"""Orchestration and integrations: Prefect flows and steps; DVC, Great Expectations,
MLflow and BentoML steps; the ``mlzoo`` CLI. Imports tasks_lib, never the reverse.
"""
