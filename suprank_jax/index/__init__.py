"""A trained model's gallery as a searchable index, and its commands.

* ``store``: the index folder (embeddings, items, model, searcher) and its search.
* ``export``: a run's gallery embedded into an index (``python -m suprank_jax.export``).
* ``search``: image files against an index (``python -m suprank_jax.search``).
"""
