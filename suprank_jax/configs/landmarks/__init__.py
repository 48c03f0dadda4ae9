"""The landmark experiments' config files; their records are in ``configs/experiments/landmarks.py``."""

from suprank_jax.configs import experiment
from suprank_jax.configs.experiments import landmarks as landmark_table

__all__ = ["compose"]


def compose(*, dataset: str, loss: str, optimizer: str, num_epochs: int = 100):
  """A landmark composition outside the table (e.g. ``benchmarks/bench_landmarks.py``): ``dataset``
  (``gldv2`` or ``gldv2_hier``), the landmark model, ``optimizer`` and ``loss`` groups, and the landmark
  evaluations' metrics (``experiments.landmarks.landmark_metrics``)."""
  config = experiment.compose(
    dataset=dataset, model="resnet_101_lm", optimizer=optimizer, loss=loss, num_epochs=num_epochs
  )
  landmark_table.landmark_metrics(config)
  return config
