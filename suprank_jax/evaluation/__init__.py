"""Retrieval evaluation: pure metrics on embeddings (``retrieval``, ``metrics``), nearest-neighbour
search (``search``: exact; ``scann_search``: ScaNN), the Revisited Oxford/Paris protocol
(``landmarks``), and the ``Evaluator`` that embeds a data split with a model (``evaluator``)."""

from suprank_jax.evaluation.landmarks import evaluate_revisited, multiscale_embed, revisited_metrics
from suprank_jax.evaluation.metrics import inter_set_overall_accuracy, overall_accuracy
from suprank_jax.evaluation.retrieval import default_config, evaluate_retrieval, with_distractors

__all__ = [
  "evaluate_retrieval",
  "default_config",
  "with_distractors",
  "revisited_metrics",
  "evaluate_revisited",
  "multiscale_embed",
  "overall_accuracy",
  "inter_set_overall_accuracy",
]
