"""Evaluators: embed data with the model and compute metrics on the embeddings.

``make_evaluator(name, config.evals.<name>, config.input, model=, mesh=, log=)`` builds the evaluation
of the kind ``config.evals.<name>.kind`` names, one module per kind (:data:`EVALUATORS`):

* ``'retrieval'`` (:class:`~suprank_jax.evaluation.retrieval_evaluator.RetrievalEvaluator`): a split of
  a data set (and a gallery split), with the metrics of :mod:`suprank_jax.evaluation.retrieval`;
* ``'revisited'`` (:class:`~suprank_jax.evaluation.revisited_evaluator.RevisitedEvaluator`): Revisited
  Oxford and Paris (and the 1M distractors), with the protocol's metrics
  (:mod:`suprank_jax.evaluation.landmarks`).

An evaluator reads its data sets and checks its settings when it is built (so that a missing file or
a bad setting stops a run before any training); ``.run(variables)`` returns ``{metric: value}`` for
the model with those variables. :func:`run_all` runs several, with DyML's overall accuracies.
"""

from __future__ import annotations

import time
from typing import Protocol

import ml_collections

from suprank_jax.evaluation import embedding_store
from suprank_jax.evaluation import metrics as metrics_lib
from suprank_jax.evaluation.retrieval_evaluator import RetrievalEvaluator
from suprank_jax.evaluation.revisited_evaluator import RevisitedEvaluator

__all__ = [
  "Evaluator",
  "EVALUATORS",
  "make_evaluator",
  "run_all",
  "HEADLINE_METRICS",
  "REVISITED_HEADLINE_METRICS",
  "headline_columns",
]

# The evaluator of each kind (config.evals.<name>.kind).
EVALUATORS = {"retrieval": RetrievalEvaluator, "revisited": RevisitedEvaluator}

# The metrics of the table printed at the end of a run (keys of retrieval.evaluate_retrieval).
HEADLINE_METRICS = ("R@1_level0", "mAP@R_level0", "H-AP_multi")
# Those of a Revisited evaluation: the Medium and Hard mAP the landmark literature reports.
REVISITED_HEADLINE_METRICS = tuple(f"{d}/mAP_{s}" for d in ("roxford5k", "rparis6k") for s in ("medium", "hard"))


class Evaluator(Protocol):
  """What every kind of evaluator has (the trainer's retrieval pictures use the sources and ``embed``)."""

  name: str
  config: ml_collections.ConfigDict  # config.evals.<name>
  input_config: ml_collections.ConfigDict
  query_source: object
  gallery_source: object  # None: leave-one-out over the queries
  self_index: object  # each query's copy in the gallery, or None

  def embed(self, variables, source) -> tuple:
    """``(embeddings [N, D], labels [N, L])`` of ``source``."""

  def run(self, variables) -> dict:
    """``{metric_name: value}`` of the model with ``variables``."""


def make_evaluator(
  name: str, eval_config: ml_collections.ConfigDict, input_config, *, model, mesh, log=print
) -> Evaluator:
  """The evaluator of ``config.evals.<name>``, of the class :data:`EVALUATORS` gives its ``kind``.

  Args:
    name: the evaluation's name (used in logs and messages).
    eval_config: ``config.evals.<name>`` (``configs/common.eval_config``).
    input_config: ``config.input`` (the evaluation preprocessing, and the data set by default).
    model: the Linen module.
    mesh: the device mesh.
    log: progress printer.

  Raises:
    ValueError: an unknown kind, a setting of another kind set to a non-default value, a bad store
      setting, or (from the evaluator) a bad setting of its own or an empty or missing data set.
  """
  # A run written before evaluations had kinds is a retrieval evaluation.
  kind = eval_config.kind if "kind" in eval_config else "retrieval"
  if kind not in EVALUATORS:
    raise ValueError(f"config.evals.{name}.kind={kind!r}; valid: {tuple(EVALUATORS)}")
  cls = EVALUATORS[kind]
  _check_unread(name, eval_config, kind, cls.UNREAD_DEFAULTS)
  embedding_store.check_settings(name, eval_config)
  return cls(name, eval_config, input_config, model=model, mesh=mesh, log=log)


def run_all(evaluators: dict, variables, *, overall_over=(), report=None) -> dict:
  """Every evaluation of the model with ``variables`` (a train state's ``state.variables()``):
  ``{name: metrics}``.

  With DyML's overall accuracies (the original's ``overall_accuracy``): within a set evaluated on
  several hierarchy levels (``overall_<key>`` in its metrics), and across the sets named in
  ``overall_over`` (``results['overall']``). ``report(name, metrics, seconds)`` is called after each.
  """
  results = {}
  for name, ev in evaluators.items():
    t0 = time.perf_counter()
    metrics = ev.run(variables)
    if len(ev.config.metrics.hierarchy_levels) > 1:
      overall = metrics_lib.overall_accuracy(metrics, protocol=ev.config.metrics.protocol)
      metrics.update({f"overall_{k}": v for k, v in overall.items()})
    results[name] = metrics
    if report is not None:
      report(name, metrics, time.perf_counter() - t0)
  if overall_over:
    results["overall"] = metrics_lib.inter_set_overall_accuracy({name: results[name] for name in overall_over})
    if report is not None:
      report("overall", results["overall"], 0.0)
  return results


def headline_columns(rows) -> tuple:
  """The headline metrics that some entry of ``rows`` (``{name: {metric: value}}``) has, in order
  (:data:`HEADLINE_METRICS` when none has any)."""
  present = tuple(c for c in HEADLINE_METRICS + REVISITED_HEADLINE_METRICS if any(c in m for m in rows.values()))
  return present or HEADLINE_METRICS


def _check_unread(name, eval_config, kind, defaults):
  """Raises for a key of ``eval_config`` that ``kind`` does not read, set to a non-default value."""
  for key, default in defaults.items():
    if key not in eval_config:
      continue
    value = eval_config[key]
    value = value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value
    default = default.to_dict() if isinstance(default, ml_collections.ConfigDict) else default
    if value != default:
      raise ValueError(
        f"config.evals.{name}.{key} is set but config.evals.{name}.kind={kind!r} does not read it; "
        "leave it at its default or change the kind"
      )
