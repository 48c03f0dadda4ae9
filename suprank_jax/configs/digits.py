"""ROADMAP on the embedded digits data set: the default run, on a CPU, with no download.

Paper: Ramzi et al., "Robust and Decomposable Average Precision for Image Retrieval" (NeurIPS 2021):
the objective is 0.9 SupAP + 0.1 calibration loss (ROADMAP_SOP.yaml of the reference).
Data: scikit-learn's bundled 8x8 handwritten digits, two label levels (digit, shape group), see
``suprank_jax/input_pipeline/readers/digits.py``.

Command:
  python -m suprank_jax.train --config suprank_jax/configs/digits.py --workdir /tmp/digits
  python -m suprank_jax.train --config suprank_jax/configs/digits.py:smoke --workdir /tmp/digits_smoke

Expected on a 2-core CPU: about 1 minute in all (compilation included); test mAP@R goes from about
0.5 (untrained) to about 0.98 after 600 steps of batch 120.
"""

from suprank_jax.configs import common


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, smoke=False)
  config = common.base_config()
  config.total_steps = 600
  config.log_every_steps = 50
  config.checkpoint_every_steps = 300

  config.input.dataset = "digits"
  config.input.global_batch_size = 120
  config.input.samples_per_class = 12

  common.set_model(config, "convnet", embed_dim=64)

  # max_positives: the M-per-class sampler gives every query exactly samples_per_class positives; the
  # static bound lets SupAP rank only them ([B, M, B] instead of [B, B, B]). Raise it with
  # samples_per_class (the trainer stops on a smaller bound).
  common.set_loss(config, "sup_ap", 0.9, tau=0.01, rho=100.0, offset=1.44, delta=0.05, start=0.5, max_positives=12)
  common.set_loss(config, "calibration", 0.1, pos_margin=0.9, neg_margin=0.6)

  config.optim.name = "adam"
  config.optim.learning_rate = 1e-3
  config.optim.schedule = "cosine"

  config.evals.test.batch_size = 512
  config.evals.test.metrics.recall_at = (1, 10)

  if args.smoke:
    config.total_steps = 20
    config.log_every_steps = 10
    config.checkpoint_every_steps = 10
  return config
