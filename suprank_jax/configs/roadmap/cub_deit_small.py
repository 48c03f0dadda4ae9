"""ROADMAP (SupAP + calibration) on CUB-200-2011 with DeiT-S (``roadmap/cub_deit_small``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/cub_deit_small"].get_config
