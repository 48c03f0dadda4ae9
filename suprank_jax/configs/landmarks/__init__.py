"""The landmark experiments of the original: ROADMAP, HAPPIER, CSL, normalised softmax and ArcFace
trained on GLDv2 or H-GLDv2 with its landmark model (``resnet_101_LM``), evaluated on Revisited
Oxford/Paris and the H-GLDv2 benchmark (the original's ``evaluate_landmark.py``).

The original repository gives no command for these runs: each experiment composes the original's
config files that fit together (a loss whose class weights take ``${optimizer.opt.net}`` needs the
single-optimizer ``gldv2_bench`` file, one that takes ``${optimizer.opt.head}`` the backbone/head
``gldv2`` file) with the original's defaults (``default.yaml``: 100 epochs, evaluation every 20) and
``evaluation=landmark_evaluation``: ``default.yaml``'s ``accuracy_calculator`` cannot evaluate the
Revisited Oxford/Paris test sets that the GLDv2 dataset files give, so these runs need the landmark
evaluation (mAP, Medium and Hard) during training; ``evaluate_landmark.py`` then evaluates a checkpoint
on Revisited Oxford/Paris and the H-GLDv2 benchmark.
"""

from suprank_jax.configs import experiment
from suprank_jax.evaluation import retrieval

__all__ = ["compose"]


def compose(*, dataset: str, loss: str, optimizer: str, num_epochs: int = 100):
  """A landmark experiment: ``dataset`` (``gldv2`` or ``gldv2_hier``), the landmark model, ``optimizer``
  and ``loss`` groups. The Revisited evaluation reads no retrieval metric setting; the H-GLDv2
  benchmark keeps the default protocol, whose H-AP is the original's ``hap_LM`` (relevances from each
  query's ranked index; the original protocol of ``retrieval.py`` takes them from the query set)."""
  config = experiment.compose(dataset=dataset, model="resnet_101_lm", optimizer=optimizer, loss=loss,
                              num_epochs=num_epochs)
  for ev in config.evals.values():
    ev.metrics = retrieval.default_config()
  if "hgldv2" in config.evals:
    config.evals.hgldv2.metrics.recall_at = ()
    config.evals.hgldv2.metrics.precision_at = (1, 100)
    config.evals.hgldv2.metrics.map_at = (100,)
  return config
