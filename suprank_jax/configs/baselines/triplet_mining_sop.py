"""Baseline: the triplet loss with semi-hard mining on SOP with ResNet-50 (``baselines/triplet_mining_sop``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/triplet_mining_sop"].get_config
