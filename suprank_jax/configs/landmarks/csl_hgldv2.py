"""CSL (three-level proxies) on H-GLDv2, with the original's landmark model (``landmarks/csl_hgldv2``): its record is in suprank_jax/configs/experiments/landmarks.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["landmarks/csl_hgldv2"].get_config
