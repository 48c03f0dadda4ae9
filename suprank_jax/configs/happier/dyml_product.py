"""HAPPIER on DyML-Product (command 6 of the HAPPIER repository's README) (``happier/dyml_product``): its record is in suprank_jax/configs/experiments/happier.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["happier/dyml_product"].get_config
