"""Baseline: SupHAP (HAPPIER's surrogate alone) on SOP with ResNet-50 (``baselines/suphap_sop``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/suphap_sop"].get_config
