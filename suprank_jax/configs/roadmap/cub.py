"""ROADMAP (SupAP + calibration) on CUB-200-2011 with ResNet-50 (``roadmap/cub``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/cub"].get_config
