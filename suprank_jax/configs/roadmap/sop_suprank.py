"""ROADMAP (SupAP + calibration) on SOP with ResNet-50, as the SupRank repository's files compose it (``roadmap/sop_suprank``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/sop_suprank"].get_config
