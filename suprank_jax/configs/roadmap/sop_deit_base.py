"""ROADMAP (SupAP + calibration) on SOP with DeiT-B (``roadmap/sop_deit_base``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/sop_deit_base"].get_config
