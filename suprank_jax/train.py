"""``python -m suprank_jax.train --config FILE --workdir DIR [--config.a.b=v ...]``: the training command.

The command line is :mod:`suprank_jax.training.main`; the trainer is :mod:`suprank_jax.training`
(``train_and_evaluate`` and ``summary_table``, re-exported here for notebooks and scripts).
"""

from suprank_jax.training.main import run
from suprank_jax.training.train import summary_table, train_and_evaluate

__all__ = ["run", "summary_table", "train_and_evaluate"]

if __name__ == "__main__":
  run()
