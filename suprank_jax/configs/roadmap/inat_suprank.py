"""ROADMAP (SupAP + calibration) on iNaturalist-2018 with ResNet-50, as the SupRank repository's files compose it (``roadmap/inat_suprank``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/inat_suprank"].get_config
