"""The retrieval evaluation of one split (``config.evals.<name>.kind='retrieval'``).

The split (and a gallery split) is embedded in fixed-size padded batches (``mask`` marks real items)
gathered in data order on every process (:func:`embed_source`, also the exporter's), and the metric
math is :mod:`suprank_jax.evaluation.retrieval` (pure, on embeddings and labels). A large set is
embedded on disk (:mod:`suprank_jax.evaluation.embedding_store`).
"""

from __future__ import annotations

import functools

import jax
import ml_collections
import numpy as np

from suprank_jax.evaluation import embedding_store, landmarks, retrieval
from suprank_jax.evaluation.pictures import subset_source
from suprank_jax.input_pipeline import datasets, pipeline, query_copies
from suprank_jax.runtime import parallel, reporting

__all__ = ["RetrievalEvaluator", "embed_source", "make_embed_fn", "evaluation_input_config"]


def embed_source(
  embed_fn, variables, input_config, source, *, batch_size: int, mesh, log=None, store_folder: str | None = None
):
  """Embeds every item of ``source``, with a progress line (images/s, ETA) every 30 s when ``log``.

  Args:
    embed_fn: jitted ``(variables, batch) -> (embeddings, mask, labels, index)`` with replicated
      outputs (see :func:`make_embed_fn`).
    variables: model variables.
    input_config: ``config.input`` (eval preprocessing).
    source: the split to embed.
    batch_size: global batch size (padded batches of this size).
    mesh: the device mesh.
    log: progress printer, or None.
    store_folder: write the embeddings into an on-disk :class:`embedding_store.EmbeddingStore` there
      (flushed every 30 s); the items that an interrupted run already stored there are not embedded
      again (on several processes: those every process has).

  Returns:
    ``(embeddings [N, D] float32, labels [N, L] int32)`` in the source's order; with
    ``store_folder`` the embeddings are the store's ``np.memmap``.
  """
  parallel.check_batch_size(batch_size, mesh, name="config.evals.<name>.batch_size")
  local_batch = batch_size // jax.process_count()
  store = None if store_folder is None else embedding_store.EmbeddingStore.reopen(store_folder, len(source))
  todo = np.arange(len(source)) if store_folder is None else _missing_on_every_process(store, len(source))
  if log is not None and len(todo) < len(source):
    log(f"{source.name}: {len(source) - len(todo):,} of {len(source):,} images already embedded in {store_folder}")
  chunks, label_chunks, index_chunks = [], [], []
  done = len(source) - len(todo)
  progress = reporting.ProgressLog(log, source.name, len(source), done=done)
  batches = (
    ()
    if not len(todo)
    else pipeline.make_eval_batches(
      input_config,
      source if len(todo) == len(source) else subset_source(source, todo),
      batch_size=local_batch,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
      uint8_images=True,
    )
  )
  # uint8 images on the host, normalised on the devices (a quarter of the bytes to send).
  for batch in batches:
    device_batch = parallel.global_batch(batch, mesh, normalization=input_config.normalization)
    embeddings, mask, labels, index = (np.asarray(x) for x in jax.device_get(embed_fn(variables, device_batch)))
    mask = mask.astype(bool)
    index = todo[index[mask]]
    if store_folder is not None:
      if store is None:
        store = embedding_store.EmbeddingStore(len(source), embeddings.shape[1], store_folder)
      store.write(index, embeddings[mask])
    else:
      chunks.append(embeddings[mask])
      label_chunks.append(labels[mask])
      index_chunks.append(index)
    done += int(mask.sum())
    progress.update(done)
  if store_folder is not None:
    store.flush()
    if len(store.missing()):
      raise RuntimeError(
        f"evaluation of {source.name!r} left {len(store.missing())} of {len(source)} items unembedded in {store_folder}"
      )
    return store.embeddings, np.asarray(source.labels, np.int32)
  index = np.concatenate(index_chunks)
  order = np.argsort(index, kind="stable")
  embeddings = np.concatenate(chunks)[order].astype(np.float32)
  labels = np.concatenate(label_chunks)[order].astype(np.int32)
  if len(index) != len(source) or np.any(index[order] != np.arange(len(source))):
    raise RuntimeError(f"evaluation of {source.name!r} saw {len(index)} items, expected each of {len(source)} once")
  return embeddings, labels


def _missing_on_every_process(store, num_items: int) -> np.ndarray:
  """Indices of the items missing from ``store`` (None: all) on some process: every process embeds
  the same items (the batches are gathered across processes)."""
  done = np.zeros(num_items, np.uint8) if store is None else np.asarray(store.done)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    done = np.asarray(multihost_utils.process_allgather(done)).min(axis=0)
  return np.flatnonzero(done == 0)


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


class RetrievalEvaluator:
  """Retrieval evaluation of one split (``kind='retrieval'``).

  The data set is read when the evaluator is built (so a missing file stops a run before any
  training), and, for a gallery that contains the queries, each query's copy is found then.

  ``eval_config``: ``split``, ``gallery_split`` ('' for leave-one-out), ``gallery_contains_queries``,
  ``batch_size``, ``dataset``/``data_dir``/``dataset_kwargs`` and ``metrics`` (see
  ``configs/common.eval_config`` and ``retrieval.default_config``). Finding the queries' copies reads
  every gallery file once (``log`` reports it).
  """

  # The keys of the other kinds, which this one does not read (make_evaluator checks they are unset).
  UNREAD_DEFAULTS = {"revisited": landmarks.default_config()}

  def __init__(self, name: str, eval_config: ml_collections.ConfigDict, input_config, *, model, mesh, log=print):
    self.name, self.config, self.log = name, eval_config, log
    self.input_config = evaluation_input_config(input_config, eval_config)
    self.mesh = mesh
    self.query_source = datasets.get_source(self.input_config, eval_config.split)
    self.gallery_source = (
      datasets.get_source(self.input_config, eval_config.gallery_split) if eval_config.gallery_split else None
    )
    where = f"config.evals.{name}"
    if len(self.query_source) == 0:
      raise ValueError(f"{where}: split {eval_config.split!r} of {self.query_source.name} is empty")
    if self.gallery_source is not None and len(self.gallery_source) == 0:
      raise ValueError(f"{where}: gallery split {eval_config.gallery_split!r} of {self.gallery_source.name} is empty")
    num_ranked = (
      len(self.query_source) - 1
      if self.gallery_source is None
      else len(self.gallery_source) - int(bool(eval_config.gallery_contains_queries))
    )
    retrieval.check_config(
      eval_config.metrics,
      self.query_source.num_levels,
      num_queries=len(self.query_source),
      num_ranked=num_ranked,
      where=f"{where}.metrics",
    )
    self.self_index = None
    if eval_config.gallery_contains_queries:
      if self.gallery_source is None:
        raise ValueError(f"{where}.gallery_contains_queries=True needs a gallery_split")
      log(
        f"[eval {name}] finding each query's copy in the gallery ({len(self.query_source)} queries, "
        f"{len(self.gallery_source)} gallery items)"
      )
      self.self_index = query_copies.find_query_copies(self.query_source, self.gallery_source, log=log)
    embedding_store.check_writable(name, eval_config, (self.query_source, self.gallery_source))
    self.model = model
    self._embed = make_embed_fn(model, mesh)

  def embed(self, variables, source, store_folder=None):
    return embed_source(
      self._embed,
      variables,
      self.input_config,
      source,
      batch_size=self.config.batch_size,
      mesh=self.mesh,
      log=lambda m: self.log(f"[eval {self.name}] {m}"),
      store_folder=store_folder,
    )

  def run(self, variables) -> dict:
    """Metrics of the model with ``variables``: ``{metric_name: value}``. A set of at least
    ``cache_min_items`` is embedded on disk (resumed after an interruption) and searched from there in
    blocks."""
    # The store's name: the weights and everything the embedding reads (hashed only when a set is that large).
    key = functools.cache(
      lambda: embedding_store.weights_fingerprint(
        variables, repr(self.model), self.input_config.to_json_best_effort(sort_keys=True)
      )
    )
    folders = []

    def embed(source, what):
      folders.append(embedding_store.store_folder(self.config, key, f"{self.name}_{what}", len(source)))
      return self.embed(variables, source, folders[-1])

    queries, query_labels = embed(self.query_source, "query")
    gallery, gallery_labels = embed(self.gallery_source, "gallery") if self.gallery_source is not None else (None, None)
    results = retrieval.evaluate_retrieval(
      queries,
      query_labels,
      gallery,
      gallery_labels,
      config=self.config.metrics,
      self_index=self.self_index,
      gallery_contains_queries=bool(self.config.gallery_contains_queries),
      log=lambda m: self.log(f"[eval {self.name}] {m}"),
    )
    if not embedding_store.setting(self.config, "keep_embeddings"):
      del queries, gallery
      for folder in filter(None, folders):
        embedding_store.remove_store(folder)
    return results
