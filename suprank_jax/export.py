"""``python -m suprank_jax.export --workdir RUN``: a trained run's gallery as a searchable index.

The command of :mod:`suprank_jax.index.export` (the index folder format: :mod:`suprank_jax.index.store`).
"""

from suprank_jax.index.export import main

__all__ = ["main"]

if __name__ == "__main__":
  main()
