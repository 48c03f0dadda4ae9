"""Retrieval evaluation: pure metrics on embeddings (``retrieval``, ``metrics``), nearest-neighbour
search (``search``: exact; ``scann_search``: ScaNN), the Revisited Oxford/Paris protocol
(``landmarks``), and the evaluators that embed data sets with a model (``evaluator``: the table of kinds,
``make_evaluator`` and ``run_all``; one module per kind, ``retrieval_evaluator`` and
``revisited_evaluator``; their on-disk ``embedding_store``)."""

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
