"""wordpipe: raw text to embeddings to sequence models."""
