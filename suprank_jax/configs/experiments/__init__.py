"""The experiment table: every experiment of the original repositories as a record (``record.Experiment``).

A record holds the experiment's composition (``configs/groups`` names and run settings, then the small
named functions some experiments need), the one run it reproduces, its paper and published figure, its
data set and its weights. One module per family holds its records: ``happier``, ``roadmap``,
``suprank``, ``baselines``, ``landmarks``. The config file ``suprank_jax/configs/<family>/<file>.py``
of a record takes its ``get_config`` from here, and ``docs/make_experiments.py`` writes
``docs/experiments.md`` from here.
"""

from suprank_jax.configs.experiments import baselines, happier, landmarks, record, roadmap, suprank
from suprank_jax.configs.experiments.record import DATASETS, PAPERS, REPOSITORIES, WEIGHTS, Experiment

__all__ = ["DATASETS", "EXPERIMENTS", "FAMILIES", "PAPERS", "REPOSITORIES", "WEIGHTS", "Experiment", "record"]

# The families in the order of docs/experiments.md (HAPPIER first: the original README's order).
FAMILIES = {
  "happier": happier,
  "roadmap": roadmap,
  "suprank": suprank,
  "baselines": baselines,
  "landmarks": landmarks,
}

# 'family/file' -> Experiment, in the order of docs/experiments.md.
EXPERIMENTS = {e.name: e for family in FAMILIES.values() for e in family.EXPERIMENTS}
