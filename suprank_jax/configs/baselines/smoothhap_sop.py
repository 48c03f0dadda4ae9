"""Baseline: Smooth-HAP on SOP with ResNet-50 (``baselines/smoothhap_sop``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/smoothhap_sop"].get_config
