"""Offline evaluation: protocols, metrics, comparison tables, retrieval and rating quality, datasets.

Sits above the facade: scripts, benchmarks and tests import it; the serving path
(`engine`) and the models (`recommenders`) never do.
"""
