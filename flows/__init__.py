"""Prefect flows: thin sequences of tasks."""
