"""ROADMAP (SupAP + normalised softmax) on GLDv2, with the original's landmark model (``landmarks/roadmap_gldv2``): its record is in suprank_jax/configs/experiments/landmarks.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["landmarks/roadmap_gldv2"].get_config
