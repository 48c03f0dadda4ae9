"""Baseline: ProxyNCA++ on SOP with ResNet-50 (``baselines/proxy_nca_pp_sop``): its record is in suprank_jax/configs/experiments/baselines.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["baselines/proxy_nca_pp_sop"].get_config
