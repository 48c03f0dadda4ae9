"""HAPPIER on iNat-base (command 1 of the original README) (``happier/inat_base``): its record is in suprank_jax/configs/experiments/happier.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["happier/inat_base"].get_config
