"""Guardrails: what the assistant checks before and around answering.

``hygiene`` (size, Unicode, control characters) -> ``pii`` (redaction) -> ``checks`` (injection,
harmful and off-topic requests, safety, asking for a person, account actions, repeat contacts,
using the ``classifier`` over local embeddings) -> ``defects`` (symptom versus evidence, known
incidents). ``policy.yaml`` holds the thresholds, patterns and messages; ``engine.Guardrails``
runs them for the pipeline.
"""
