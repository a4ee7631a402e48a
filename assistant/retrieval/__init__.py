"""Retrieval: embeddings, the Chroma vector store, BM25, fusion and journey-aware ranking."""
