"""HAPPIER on iNat-full (command 2 of the original README) (``happier/inat_full``): its record is in suprank_jax/configs/experiments/happier.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["happier/inat_full"].get_config
