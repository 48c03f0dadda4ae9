"""SupRecall (recall@k surrogate + calibration) on iNaturalist-2018 (``suprank/suprecall_inat``): its record is in suprank_jax/configs/experiments/suprank.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["suprank/suprecall_inat"].get_config
