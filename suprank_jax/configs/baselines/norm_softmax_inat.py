"""Baseline: normalised softmax (NSM) on iNat-base with ResNet-50 (``baselines/norm_softmax_inat``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/norm_softmax_inat"].get_config
