"""Baseline: SupAP with a cross-batch memory on iNat-base with ResNet-50 (``baselines/supap_xbm_inat``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/supap_xbm_inat"].get_config
