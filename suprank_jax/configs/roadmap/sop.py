"""ROADMAP (SupAP + calibration) on SOP with ResNet-50 (``roadmap/sop``): its record is in suprank_jax/configs/experiments/roadmap.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["roadmap/sop"].get_config
