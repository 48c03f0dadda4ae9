"""ArcFace on GLDv2, with the original's landmark model (``landmarks/arcface_gldv2``): its record is in suprank_jax/configs/experiments/landmarks.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["landmarks/arcface_gldv2"].get_config
