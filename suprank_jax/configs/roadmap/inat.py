"""ROADMAP (SupAP + calibration) on iNaturalist-2018 with ResNet-50 (``roadmap/inat``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/inat"].get_config
