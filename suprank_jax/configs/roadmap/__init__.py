"""ROADMAP experiments: the runs of the ROADMAP repository's README (elias-ramzi/ROADMAP, the NeurIPS 2021
table), built from its own config files (the ``roadmap_repo_*`` groups, or SupRank's groups where they hold
the same values), and compositions of the SupRank repository's files (``*_suprank.py``, ``*_deit_base.py``,
``inat_deit_*.py``).
"""

from suprank_jax.configs import experiment

__all__ = ["readme_run"]


def readme_run(*, dataset: str, model: str, optimizer: str, loss: str, num_epochs: int, batch_size: int = 128,
               batches_per_super_tuple: int = 0):
  """A run of the ROADMAP repository's README: the groups, its ``experience.max_iter`` (``num_epochs``),
  ``experience.seed=333``, ``dataset.sampler.kwargs.batch_size`` (and ``batches_per_super_pair``) and
  its ``experience/default.yaml``: evaluation every 5 epochs and at the end (``test_eval_freq: 5``), no
  warm-up (``warm_up: -1``)."""
  config = experiment.compose(dataset=dataset, model=model, optimizer=optimizer, loss=loss, num_epochs=num_epochs,
                              seed=333)
  config.eval_every_epochs = 5
  config.input.global_batch_size = batch_size
  if batches_per_super_tuple:
    config.input.batches_per_super_tuple = batches_per_super_tuple
  return config
