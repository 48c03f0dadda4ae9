"""Baseline: the contrastive loss with a cross-batch memory (XBM) on SOP with ResNet-50 (``baselines/xbm_sop``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/xbm_sop"].get_config
