"""ROADMAP (SupAP + calibration) on iNaturalist-2018 with DeiT-B (``roadmap/inat_deit_base``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/inat_deit_base"].get_config
