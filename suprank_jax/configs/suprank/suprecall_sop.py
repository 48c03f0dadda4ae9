"""SupRecall (recall@k surrogate + calibration) on SOP (``suprank/suprecall_sop``): its record is in suprank_jax/configs/experiments/suprank.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["suprank/suprecall_sop"].get_config
