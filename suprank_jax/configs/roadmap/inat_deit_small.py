"""ROADMAP (SupAP + calibration) on iNaturalist-2018 with DeiT-S (``roadmap/inat_deit_small``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/inat_deit_small"].get_config
