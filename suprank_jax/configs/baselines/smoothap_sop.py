"""Baseline: Smooth-AP on SOP with ResNet-50 (``baselines/smoothap_sop``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/smoothap_sop"].get_config
