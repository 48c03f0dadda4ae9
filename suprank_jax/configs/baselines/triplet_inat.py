"""Baseline: the triplet loss on iNat-base with ResNet-50 (``baselines/triplet_inat``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/triplet_inat"].get_config
