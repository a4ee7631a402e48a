"""Guardrails: checks on what comes in before it reaches retrieval or a model."""
