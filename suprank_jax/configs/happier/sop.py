"""HAPPIER on Stanford Online Products (command 3 of the original README) (``happier/sop``): its record is in suprank_jax/configs/experiments/happier.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["happier/sop"].get_config
