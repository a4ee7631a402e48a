"""Ingestion: policy documents in, chunks and an index out."""
