"""The `shopvec` command: index, fit, query, evaluate, bench, serve, plot-embeddings."""
