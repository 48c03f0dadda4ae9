"""``python -m suprank_jax.search --index DIR image.png ...``: the nearest gallery items of image files.

The command of :mod:`suprank_jax.index.search`.
"""

from suprank_jax.index.search import main

__all__ = ["main"]

if __name__ == "__main__":
  main()
