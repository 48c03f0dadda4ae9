"""HAPPIER on DyML-Animal (command 5 of the original README) (``happier/dyml_animal``): its record is in suprank_jax/configs/experiments/happier.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["happier/dyml_animal"].get_config
