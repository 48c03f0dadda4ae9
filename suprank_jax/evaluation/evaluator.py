"""Evaluator: embeds a data split with the model and computes retrieval metrics on the embeddings.

The metric math lives in :mod:`suprank_jax.evaluation.retrieval` (pure, on embeddings and labels);
this module only runs the model over padded batches (``mask`` marks real items) and gathers the
embeddings, in data order, on every process.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from suprank_jax import parallel
from suprank_jax.evaluation import retrieval
from suprank_jax.input_pipeline import pipeline, query_copies, sources

__all__ = ["Evaluator", "embed_source", "make_embed_fn", "evaluation_input_config", "HEADLINE_METRICS"]

# The metrics of the table printed at the end of a run (keys of retrieval.evaluate_retrieval).
HEADLINE_METRICS = ("R@1_level0", "mAP@R_level0", "H-AP_multi")


def embed_source(embed_fn, variables, input_config, source, *, batch_size: int, mesh):
  """Embeds every item of ``source``.

  Args:
    embed_fn: jitted ``(variables, batch) -> (embeddings, mask, labels, index)`` with replicated
      outputs (see :func:`make_embed_fn`).
    variables: model variables.
    input_config: ``config.input`` (eval preprocessing).
    source: the split to embed.
    batch_size: global batch size (padded batches of this size).
    mesh: the device mesh.

  Returns:
    ``(embeddings [N, D] float32, labels [N, L] int32)`` in the source's order.
  """
  parallel.check_batch_size(batch_size, mesh, name="config.evals.<name>.batch_size")
  local_batch = batch_size // jax.process_count()
  chunks, label_chunks, index_chunks = [], [], []
  for batch in pipeline.make_eval_batches(input_config, source, batch_size=local_batch,
                                          process_index=jax.process_index(),
                                          process_count=jax.process_count()):
    embeddings, mask, labels, index = (
        np.asarray(x) for x in jax.device_get(embed_fn(variables, parallel.global_batch(batch, mesh))))
    mask = mask.astype(bool)
    chunks.append(embeddings[mask])
    label_chunks.append(labels[mask])
    index_chunks.append(index[mask])
  index = np.concatenate(index_chunks)
  order = np.argsort(index, kind="stable")
  embeddings = np.concatenate(chunks)[order].astype(np.float32)
  labels = np.concatenate(label_chunks)[order].astype(np.int32)
  if len(index) != len(source) or np.any(index[order] != np.arange(len(source))):
    raise RuntimeError(f"evaluation of {source.name!r} saw {len(index)} items, expected each of {len(source)} once")
  return embeddings, labels


def make_embed_fn(model, mesh):
  """Jitted ``(variables, batch) -> (embeddings, mask, labels, index)``, all replicated on every process."""

  def embed(variables, batch):
    embeddings = model.apply(variables, batch["images"], train=False)
    return embeddings, batch["mask"], batch["labels"], batch["index"]

  return jax.jit(embed, out_shardings=parallel.replicated(mesh))


def evaluation_input_config(input_config, eval_config):
  """``config.input`` with the data set of ``eval_config`` (its ``dataset``, ``data_dir`` and
  ``dataset_kwargs`` where set; the preprocessing stays ``config.input``'s)."""
  if not (eval_config.dataset or eval_config.data_dir or eval_config.dataset_kwargs):
    return input_config
  c = input_config.copy_and_resolve_references()
  with c.unlocked():
    if eval_config.dataset:
      c.dataset = eval_config.dataset
      c.dataset_kwargs = ml_collections.ConfigDict()
    if eval_config.data_dir:
      c.data_dir = eval_config.data_dir
    if eval_config.dataset_kwargs:
      c.dataset_kwargs = ml_collections.ConfigDict(dict(eval_config.dataset_kwargs))
  return c


class Evaluator:
  """Retrieval evaluation of one split (``config.evals.<name>``).

  The data set is read when the evaluator is built (so a missing file stops a run before any
  training), and, for a gallery that contains the queries, each query's copy is found then.

  Args:
    name: the evaluation's name (used in logs).
    eval_config: ``config.evals.<name>``: ``split``, ``gallery_split`` ('' for leave-one-out),
      ``gallery_contains_queries``, ``batch_size``, ``dataset``/``data_dir``/``dataset_kwargs`` and
      ``metrics`` (see ``configs/common.eval_config`` and ``retrieval.default_config``).
    input_config: ``config.input`` (the evaluation preprocessing, and the data set by default).
    model: the Linen module.
    mesh: the device mesh.
    log: progress printer (finding the queries' copies reads every gallery file once).
  """

  def __init__(self, name: str, eval_config: ml_collections.ConfigDict, input_config, *, model, mesh, log=print):
    self.name = name
    self.config = eval_config
    self.input_config = evaluation_input_config(input_config, eval_config)
    self.mesh = mesh
    self.query_source = sources.get_source(self.input_config, eval_config.split)
    self.gallery_source = (sources.get_source(self.input_config, eval_config.gallery_split)
                           if eval_config.gallery_split else None)
    where = f"config.evals.{name}"
    if len(self.query_source) == 0:
      raise ValueError(f"{where}: split {eval_config.split!r} of {self.query_source.name} is empty")
    if self.gallery_source is not None and len(self.gallery_source) == 0:
      raise ValueError(f"{where}: gallery split {eval_config.gallery_split!r} of {self.gallery_source.name} is empty")
    num_ranked = (len(self.query_source) - 1 if self.gallery_source is None
                  else len(self.gallery_source) - int(bool(eval_config.gallery_contains_queries)))
    retrieval.check_config(eval_config.metrics, self.query_source.num_levels, num_queries=len(self.query_source),
                           num_ranked=num_ranked, where=f"{where}.metrics")
    self.self_index = None
    if eval_config.gallery_contains_queries:
      if self.gallery_source is None:
        raise ValueError(f"{where}.gallery_contains_queries=True needs a gallery_split")
      log(f"[eval {name}] finding each query's copy in the gallery ({len(self.query_source)} queries, "
          f"{len(self.gallery_source)} gallery items)")
      self.self_index = query_copies.find_query_copies(self.query_source, self.gallery_source, log=log)
    self._embed = make_embed_fn(model, mesh)

  def embed(self, variables, source):
    return embed_source(self._embed, variables, self.input_config, source, batch_size=self.config.batch_size,
                        mesh=self.mesh)

  def run(self, state) -> dict:
    """Metrics of ``state``'s model: ``{metric_name: value}``."""
    variables = state.variables()
    queries, query_labels = self.embed(variables, self.query_source)
    gallery, gallery_labels = (self.embed(variables, self.gallery_source) if self.gallery_source is not None
                               else (None, None))
    return retrieval.evaluate_retrieval(queries, query_labels, gallery, gallery_labels, config=self.config.metrics,
                                        self_index=self.self_index,
                                        gallery_contains_queries=bool(self.config.gallery_contains_queries))
