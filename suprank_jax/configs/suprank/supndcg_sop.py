"""SupNDCG (NDCG surrogate + cluster loss) on SOP (``suprank/supndcg_sop``): its record is in suprank_jax/configs/experiments/suprank.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["suprank/supndcg_sop"].get_config
