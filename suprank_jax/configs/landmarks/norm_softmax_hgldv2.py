"""Normalised softmax (NSM) on H-GLDv2, with the original's landmark model (``landmarks/norm_softmax_hgldv2``): its record is in suprank_jax/configs/experiments/landmarks.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["landmarks/norm_softmax_hgldv2"].get_config
