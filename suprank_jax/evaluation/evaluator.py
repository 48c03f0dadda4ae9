"""Evaluators: embed data with the model and compute metrics on the embeddings.

``Evaluator(name, config.evals.<name>, config.input, model=, mesh=, log=)`` builds the evaluation of
the kind ``config.evals.<name>.kind`` names (:data:`EVAL_KINDS`), reads its data sets and checks its
settings at once (so a missing file or a bad setting stops a run before any training), and
``.run(state)`` returns ``{metric: value}``:

* ``'retrieval'`` (:class:`RetrievalEvaluator`): a split of a data set (and a gallery split), in
  fixed-size padded batches (``mask`` marks real items) gathered in data order on every process;
  the metric math is :mod:`suprank_jax.evaluation.retrieval` (pure, on embeddings and labels);
* ``'revisited'`` (:class:`RevisitedEvaluator`): Revisited Oxford and Paris (and the 1M distractors)
  at the protocol's resolution (:mod:`suprank_jax.evaluation.image_embedding`), with the protocol's
  metrics (:mod:`suprank_jax.evaluation.landmarks`).
"""

from __future__ import annotations

import functools
import os
import tempfile
import time

import jax
import ml_collections
import numpy as np

from suprank_jax.evaluation import image_embedding, landmarks, retrieval
from suprank_jax.evaluation import metrics as metrics_lib
from suprank_jax.evaluation.pictures import subset_source
from suprank_jax.input_pipeline import datasets, pipeline, query_copies, sources
from suprank_jax.input_pipeline.readers import revisited
from suprank_jax.models import whitening as whitening_lib
from suprank_jax.runtime import parallel, reporting

__all__ = [
  "run_all",
  "Evaluator",
  "RetrievalEvaluator",
  "RevisitedEvaluator",
  "EVAL_KINDS",
  "embed_source",
  "make_embed_fn",
  "evaluation_input_config",
  "HEADLINE_METRICS",
  "REVISITED_HEADLINE_METRICS",
  "headline_columns",
]

EVAL_KINDS = ("retrieval", "revisited")

# The metrics of the table printed at the end of a run (keys of retrieval.evaluate_retrieval).
HEADLINE_METRICS = ("R@1_level0", "mAP@R_level0", "H-AP_multi")
# Those of a Revisited evaluation: the Medium and Hard mAP the landmark literature reports.
REVISITED_HEADLINE_METRICS = tuple(f"{d}/mAP_{s}" for d in ("roxford5k", "rparis6k") for s in ("medium", "hard"))


def run_all(evaluators: dict, state, *, overall_over=(), report=None) -> dict:
  """Every evaluation of ``state``'s model (``state.variables()``): ``{name: metrics}``.

  With DyML's overall accuracies (the original's ``overall_accuracy``): within a set evaluated on
  several hierarchy levels (``overall_<key>`` in its metrics), and across the sets named in
  ``overall_over`` (``results['overall']``). ``report(name, metrics, seconds)`` is called after each.
  """
  results = {}
  for name, ev in evaluators.items():
    t0 = time.perf_counter()
    metrics = ev.run(state)
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
    store_folder: write the embeddings into an on-disk :class:`image_embedding.EmbeddingStore` there
      (flushed every 30 s); the items that an interrupted run already stored there are not embedded
      again (on several processes: those every process has).

  Returns:
    ``(embeddings [N, D] float32, labels [N, L] int32)`` in the source's order; with
    ``store_folder`` the embeddings are the store's ``np.memmap``.
  """
  parallel.check_batch_size(batch_size, mesh, name="config.evals.<name>.batch_size")
  local_batch = batch_size // jax.process_count()
  store = None if store_folder is None else image_embedding.EmbeddingStore.reopen(store_folder, len(source))
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
        store = image_embedding.EmbeddingStore(len(source), embeddings.shape[1], store_folder)
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


def _kind(eval_config) -> str:
  # A run written before evaluations had kinds is a retrieval evaluation.
  return eval_config.kind if "kind" in eval_config else "retrieval"


class Evaluator:
  """One evaluation, ``config.evals.<name>``; ``Evaluator(...)`` gives the class of its ``kind``.

  Args:
    name: the evaluation's name (used in logs and messages).
    eval_config: ``config.evals.<name>`` (``configs/common.eval_config``).
    input_config: ``config.input`` (the evaluation preprocessing, and the data set by default).
    model: the Linen module.
    mesh: the device mesh.
    log: progress printer.

  Raises:
    ValueError: an unknown kind, or a setting of another kind set to a non-default value.
  """

  def __new__(cls, name, eval_config, *args, **kwargs):
    del args, kwargs
    if cls is Evaluator:
      kind = _kind(eval_config)
      if kind not in _KINDS:
        raise ValueError(f"config.evals.{name}.kind={kind!r}; valid: {EVAL_KINDS}")
      cls = _KINDS[kind]
    return super().__new__(cls)

  def run(self, state) -> dict:
    """Metrics of ``state``'s model (``state.variables()``): ``{metric_name: value}``."""
    raise NotImplementedError


def _store_setting(eval_config, key):
  # A run written before the store settings existed has their defaults.
  return eval_config[key] if key in eval_config else image_embedding.STORE_DEFAULTS[key]


def _check_store_settings(name, eval_config):
  where = f"config.evals.{name}"
  low = _store_setting(eval_config, "cache_min_items")
  if isinstance(low, bool) or not isinstance(low, int) or low < 0:
    raise ValueError(
      f"{where}.cache_min_items={low!r} must be an integer >= 0 (sets at least this large are embedded on disk)"
    )
  if not isinstance(_store_setting(eval_config, "keep_embeddings"), bool):
    raise ValueError(f"{where}.keep_embeddings={eval_config.keep_embeddings!r} must be True or False")
  if not isinstance(_store_setting(eval_config, "cache_dir"), str):
    raise ValueError(f"{where}.cache_dir={eval_config.cache_dir!r} must be a folder path ('' for the default)")


def _check_store_writable(name, eval_config, sources_):
  """Raises unless the store folder can be written when one of ``sources_`` is large enough to go there
  (checked when the evaluator is built, not after the training)."""
  low = _store_setting(eval_config, "cache_min_items")
  large = [s for s in sources_ if s is not None and len(s) >= low]
  if not large:
    return
  folder = _store_setting(eval_config, "cache_dir") or image_embedding.default_cache_dir()
  try:
    os.makedirs(folder, exist_ok=True)
    tempfile.TemporaryFile(dir=folder).close()
  except OSError as e:
    raise ValueError(
      f"config.evals.{name}.cache_dir: {folder} is not writable ({e.strerror or e}), and "
      f"{large[0].name} ({len(large[0]):,} images, cache_min_items={low:,}) would be embedded "
      "there: give a writable cache_dir, or raise cache_min_items to keep it in memory"
    ) from e


def _store_folder(eval_config, key, what: str, num_items: int) -> str | None:
  """Where a set of ``num_items`` is embedded on disk (``key()``: the weights' fingerprint), or None
  (in memory) below ``cache_min_items``."""
  if num_items < _store_setting(eval_config, "cache_min_items"):
    return None
  return os.path.join(
    _store_setting(eval_config, "cache_dir") or image_embedding.default_cache_dir(),
    key(),
    f"process{jax.process_index()}",
    what,
  )


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


class RetrievalEvaluator(Evaluator):
  """Retrieval evaluation of one split (``kind='retrieval'``).

  The data set is read when the evaluator is built (so a missing file stops a run before any
  training), and, for a gallery that contains the queries, each query's copy is found then.

  ``eval_config``: ``split``, ``gallery_split`` ('' for leave-one-out), ``gallery_contains_queries``,
  ``batch_size``, ``dataset``/``data_dir``/``dataset_kwargs`` and ``metrics`` (see
  ``configs/common.eval_config`` and ``retrieval.default_config``). Finding the queries' copies reads
  every gallery file once (``log`` reports it).
  """

  def __init__(self, name: str, eval_config: ml_collections.ConfigDict, input_config, *, model, mesh, log=print):
    self.name, self.config, self.log = name, eval_config, log
    _check_unread(name, eval_config, "retrieval", {"revisited": landmarks.default_config()})
    _check_store_settings(name, eval_config)
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
    _check_store_writable(name, eval_config, (self.query_source, self.gallery_source))
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

  def run(self, state) -> dict:
    """Metrics of ``state``'s model: ``{metric_name: value}``. A set of at least ``cache_min_items``
    is embedded on disk (resumed after an interruption) and searched from there in blocks."""
    variables = state.variables()
    # The store's name: the weights and everything the embedding reads (hashed only when a set is that large).
    key = functools.cache(
      lambda: image_embedding.variables_fingerprint(
        variables, repr(self.model), self.input_config.to_json_best_effort(sort_keys=True)
      )
    )
    folders = []

    def embed(source, what):
      folders.append(_store_folder(self.config, key, f"{self.name}_{what}", len(source)))
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
    if not _store_setting(self.config, "keep_embeddings"):
      del queries, gallery
      for folder in filter(None, folders):
        image_embedding.remove_store(folder)
    return results


def _leaf_ids(variables) -> tuple:
  return tuple(id(x) for x in jax.tree.leaves(variables))


def _item_key(source, i: int):
  return source.location(i), None if source.boxes is None else tuple(np.asarray(source.boxes[i]).tolist())


class RevisitedEvaluator(Evaluator):
  """Revisited Oxford / Paris (``kind='revisited'``), with the 1M distractors when they are there.

  Reads ``config.evals.<name>.data_dir`` (the revisitop / cirtorch layout,
  ``revisited.REVISITED_ROOT_LAYOUT``), ``batch_size`` (images of one shape per batch) and the
  settings ``config.evals.<name>.revisited`` (``landmarks.default_config``); ``config.input`` gives the
  normalisation, ``skip_corrupt_images`` and, for a learned whitening, the training split. Every
  image file is checked when the evaluator is built.

  Metrics: ``<dataset>/mAP_<setup>``, ``<dataset>/mP@<k>_<setup>`` and ``<dataset>/num_queries_<setup>``
  for ``setup`` in easy, medium, hard (``landmarks.revisited_metrics``), and with the distractors the
  same under ``<dataset>+1m/``. The attributes ``query_source`` and ``gallery_source`` are the first
  data set's (the trainer's retrieval pictures show its queries).
  """

  def __init__(self, name: str, eval_config: ml_collections.ConfigDict, input_config, *, model, mesh, log=print):
    del mesh  # every process embeds every image on its own devices (image_embedding.ImageEmbedder)
    from suprank_jax.models.resnet import RetrievalResNet  # pylint: disable=g-import-not-at-top

    self.name, self.config, self.log = name, eval_config, log
    where = f"config.evals.{name}"
    self.settings = s = eval_config.revisited
    landmarks.check_config(s, where=f"{where}.revisited")
    _check_store_settings(name, eval_config)
    _check_unread(
      name,
      eval_config,
      "revisited",
      {
        "split": "",
        "gallery_split": "",
        "gallery_contains_queries": False,
        "dataset": "",
        "dataset_kwargs": ml_collections.ConfigDict(),
      },
    )
    if not eval_config.data_dir:
      raise ValueError(
        f"{where}.data_dir is empty: give the folder holding the Revisited data sets, laid out as\n"
        f"{revisited.REVISITED_ROOT_LAYOUT.strip()}"
      )
    self.input_config = input_config
    self.sets, self.distractor_source = revisited.revisited_sets(
      eval_config.data_dir, tuple(s.datasets), distractors=s.distractors
    )
    self.ground_truth = {
      d: [{k: q.extras[k][i] for k in ("easy", "hard", "junk")} for i in range(len(q))]
      for d, (q, _) in self.sets.items()
    }
    self.query_source, self.gallery_source = self.sets[s.datasets[0]]
    self.self_index = None
    self.whitening = whitening_lib.load_whitening(s.whitening) if s.whitening else None
    self.whitening_source = None
    checked = [x for pair in self.sets.values() for x in pair]
    if s.learn_whitening_images:
      train = datasets.get_source(input_config, input_config.train_split)
      count = min(s.learn_whitening_images, len(train))
      if count < s.learn_whitening_images:
        log(
          f"[eval {name}] the training split {train.name} has {len(train):,} images, fewer than "
          f"learn_whitening_images={s.learn_whitening_images:,}: the whitening is learned from all of them"
        )
      chosen = np.sort(np.random.default_rng(0).choice(len(train), count, replace=False))
      self.whitening_source = subset_source(train, chosen)
      checked.append(self.whitening_source)
    if self.distractor_source is not None:
      checked.append(self.distractor_source)
    sources.check_files_exist(checked, skip=bool(input_config.skip_corrupt_images), log=log)
    _check_store_writable(name, eval_config, checked)
    if s.dtype:
      if "dtype" not in set(getattr(model, "__dataclass_fields__", {})):
        raise ValueError(f"{where}.revisited.dtype={s.dtype!r}: the model has no dtype setting")
      model = model.clone(dtype=s.dtype)
    if s.pad_to_multiple and not isinstance(model, RetrievalResNet):
      raise ValueError(f"{where}.revisited.pad_to_multiple needs a ResNet (it pools over each image's region)")
    self.model = model
    self._embedder = image_embedding.ImageEmbedder(
      model,
      normalization=input_config.normalization,
      batch_size=eval_config.batch_size,
      multiscale=s.multiscale,
      pad_to_multiple=s.pad_to_multiple,
    )
    self._memo = None
    sizes = ", ".join(f"{d} {len(q)} queries / {len(g)} images" for d, (q, g) in self.sets.items())
    extra = f" + {len(self.distractor_source):,} distractors" if self.distractor_source is not None else ""
    size = (
      f"{s.square_size} x {s.square_size} (the original's square resize)" if s.square_size else f"max side {s.max_side}"
    )
    log(f"[eval {name}] Revisited: {sizes}{extra} at {size}")

  def _fingerprint(self, variables) -> str:
    s = self.settings
    return image_embedding.variables_fingerprint(
      variables,
      repr(self.model),
      s.max_side,
      s.square_size,
      s.multiscale,
      s.pad_to_multiple,
      self.input_config.normalization,
    )

  def _embed_set(self, variables, what, source, key=None):
    """A filled :class:`image_embedding.EmbeddingStore` of ``source``: with ``key`` (a callable giving
    the cache folder's name), on disk for a large set; in memory otherwise."""
    s = self.settings
    folder = None if key is None else _store_folder(self.config, key, what, len(source))
    store = image_embedding.EmbeddingStore(len(source), self._embedder.output_dim(variables), folder)
    image_embedding.embed_images(
      self._embedder,
      variables,
      source,
      store,
      max_side=s.max_side,
      square_size=s.square_size,
      threads=s.loader_threads,
      skip_corrupt=bool(self.input_config.skip_corrupt_images),
      log=lambda m: self.log(f"[eval {self.name}] {m}"),
      what=what,
    )
    return store

  def _whiten(self, embeddings, whitening):
    return embeddings if whitening is None else whitening_lib.apply_whitening(embeddings, whitening)

  def embed(self, variables, source):
    """``(embeddings [N, D], labels)`` of ``source`` (the last run's embeddings when it holds them)."""
    if self._memo is not None and self._memo[0] == _leaf_ids(variables):
      rows = self._memo[1]
      keys = [_item_key(source, i) for i in range(len(source))]
      if all(k in rows for k in keys):
        return np.stack([rows[k] for k in keys]), source.labels
    store = self._embed_set(self._embedder.local_variables(variables), source.name, source)
    return self._whiten(store.embeddings, self._memo[2] if self._memo else self.whitening), source.labels

  def run(self, state) -> dict:
    """The protocol's metrics of ``state``'s model on every data set (and with the distractors)."""
    s = self.settings
    leaves = _leaf_ids(state.variables())
    variables = self._embedder.local_variables(state.variables())
    key = functools.cache(lambda: self._fingerprint(variables))  # hashed only when a set is cached on disk
    stores = []

    def embed(what, source):
      stores.append(self._embed_set(variables, what, source, key))
      return stores[-1].embeddings

    whitening = self.whitening
    if self.whitening_source is not None:
      whitening = whitening_lib.learn_pca_whitening(embed("whitening_train", self.whitening_source))
      self.log(f"[eval {self.name}] learned a PCA-whitening from {len(self.whitening_source):,} training images")
    distractors = embed("revisitop1m", self.distractor_source) if self.distractor_source is not None else None
    transform = None if whitening is None else (lambda x: whitening_lib.apply_whitening(x, whitening))
    embedded = {}
    for dataset, (query_source, gallery_source) in self.sets.items():
      embedded[dataset] = (
        self._whiten(embed(f"{dataset}_query", query_source), whitening),
        self._whiten(embed(f"{dataset}_gallery", gallery_source), whitening),
        self.ground_truth[dataset],
      )
    results = landmarks.evaluate_revisited_sets(
      embedded,
      kappas=tuple(s.kappas),
      distractors=distractors,
      search_mode=s.search,
      scann_num_neighbors=s.scann_num_neighbors,
      distractor_transform=transform,
      log=lambda m: self.log(f"[eval {self.name}] distractors: {m}"),
    )
    metrics = {f"{name}/{k}": v for name, values in results.items() for k, v in values.items()}
    # The retrieval pictures re-embed the first data set: keep its embeddings.
    query_source, gallery_source = self.sets[s.datasets[0]]
    query, gallery, _ = embedded[s.datasets[0]]
    memo = {
      _item_key(src, i): e[i] for src, e in ((query_source, query), (gallery_source, gallery)) for i in range(len(src))
    }
    self._memo = (leaves, memo, whitening)
    if not _store_setting(self.config, "keep_embeddings"):
      for store in stores:
        store.remove()
    return metrics


_KINDS = {"retrieval": RetrievalEvaluator, "revisited": RevisitedEvaluator}
