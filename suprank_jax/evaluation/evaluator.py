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
from suprank_jax.input_pipeline import pipeline, sources

__all__ = ["Evaluator", "embed_source", "make_embed_fn", "HEADLINE_METRICS"]

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


class Evaluator:
  """Retrieval evaluation of one split (``config.evals.<name>``).

  Args:
    name: the evaluation's name (used in logs).
    eval_config: ``config.evals.<name>``: ``split``, ``gallery_split`` ('' for leave-one-out),
      ``batch_size`` and ``metrics`` (see ``retrieval.default_config``).
    input_config: ``config.input``.
    model: the Linen module.
    mesh: the device mesh.
  """

  def __init__(self, name: str, eval_config: ml_collections.ConfigDict, input_config, *, model, mesh):
    self.name = name
    self.config = eval_config
    self.input_config = input_config
    self.mesh = mesh
    self.query_source = sources.get_source(input_config, eval_config.split)
    self.gallery_source = (sources.get_source(input_config, eval_config.gallery_split)
                           if eval_config.gallery_split else None)
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
    return retrieval.evaluate_retrieval(queries, query_labels, gallery, gallery_labels, config=self.config.metrics)
