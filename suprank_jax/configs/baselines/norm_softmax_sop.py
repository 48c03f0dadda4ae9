"""Baseline: normalised softmax (NSM) on SOP with ResNet-50 (``baselines/norm_softmax_sop``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/norm_softmax_sop"].get_config
