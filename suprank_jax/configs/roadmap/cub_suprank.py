"""ROADMAP (SupAP + calibration) on CUB-200-2011 with ResNet-50, as the SupRank repository's files compose it (``roadmap/cub_suprank``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/cub_suprank"].get_config
