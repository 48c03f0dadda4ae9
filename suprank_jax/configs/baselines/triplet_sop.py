"""Baseline: the triplet loss on SOP with ResNet-50 (``baselines/triplet_sop``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/triplet_sop"].get_config
