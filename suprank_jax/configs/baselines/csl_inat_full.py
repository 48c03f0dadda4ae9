"""Baseline: CSL on iNat-full with ResNet-50 (``baselines/csl_inat_full``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/csl_inat_full"].get_config
