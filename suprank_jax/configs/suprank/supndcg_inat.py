"""SupNDCG (NDCG surrogate + cluster loss) on iNat-base (``suprank/supndcg_inat``): its record is in suprank_jax/configs/experiments/suprank.py."""

from suprank_jax.configs import experiments

get_config = experiments.EXPERIMENTS["suprank/supndcg_inat"].get_config
