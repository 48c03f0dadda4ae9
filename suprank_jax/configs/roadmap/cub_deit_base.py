"""ROADMAP (SupAP + calibration) on CUB-200-2011 with DeiT-B (``roadmap/cub_deit_base``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/cub_deit_base"].get_config
