"""ROADMAP (SupAP + calibration) on SOP with DeiT-S (``roadmap/sop_deit_small``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/sop_deit_small"].get_config
