"""HAPPIER on DyML-Vehicle (command 4 of the original README) (``happier/dyml_vehicle``): its record is in suprank_jax/configs/experiments/happier.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["happier/dyml_vehicle"].get_config
