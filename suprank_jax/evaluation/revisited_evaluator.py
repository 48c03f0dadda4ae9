"""The Revisited Oxford / Paris evaluation (``config.evals.<name>.kind='revisited'``).

The images are embedded at the protocol's resolution (:mod:`suprank_jax.evaluation.image_embedding`;
a large set on disk: :mod:`suprank_jax.evaluation.embedding_store`), with the protocol's metrics
(:mod:`suprank_jax.evaluation.landmarks`).
"""

from __future__ import annotations

import functools

import jax
import ml_collections
import numpy as np

from suprank_jax.evaluation import embedding_store, image_embedding, landmarks
from suprank_jax.evaluation.pictures import subset_source
from suprank_jax.input_pipeline import datasets, sources
from suprank_jax.input_pipeline.readers import revisited
from suprank_jax.models import whitening as whitening_lib

__all__ = ["RevisitedEvaluator"]


def _leaf_ids(variables) -> tuple:
  return tuple(id(x) for x in jax.tree.leaves(variables))


def _item_key(source, i: int):
  return source.location(i), None if source.boxes is None else tuple(np.asarray(source.boxes[i]).tolist())


class RevisitedEvaluator:
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

  # The keys of the retrieval kind, which this one does not read (make_evaluator checks they are unset).
  UNREAD_DEFAULTS = {
    "split": "",
    "gallery_split": "",
    "gallery_contains_queries": False,
    "dataset": "",
    "dataset_kwargs": ml_collections.ConfigDict(),
  }

  def __init__(self, name: str, eval_config: ml_collections.ConfigDict, input_config, *, model, mesh, log=print):
    del mesh  # every process embeds every image on its own devices (image_embedding.ImageEmbedder)
    from suprank_jax.models.resnet import RetrievalResNet  # pylint: disable=g-import-not-at-top

    self.name, self.config, self.log = name, eval_config, log
    where = f"config.evals.{name}"
    self.settings = s = eval_config.revisited
    landmarks.check_config(s, where=f"{where}.revisited")
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
    embedding_store.check_writable(name, eval_config, checked)
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
    return embedding_store.weights_fingerprint(
      variables,
      repr(self.model),
      s.max_side,
      s.square_size,
      s.multiscale,
      s.pad_to_multiple,
      self.input_config.normalization,
    )

  def _embed_set(self, variables, what, source, key=None):
    """A filled :class:`embedding_store.EmbeddingStore` of ``source``: with ``key`` (a callable giving
    the cache folder's name), on disk for a large set; in memory otherwise."""
    s = self.settings
    folder = None if key is None else embedding_store.store_folder(self.config, key, what, len(source))
    store = embedding_store.EmbeddingStore(len(source), self._embedder.output_dim(variables), folder)
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

  def run(self, variables) -> dict:
    """The protocol's metrics of the model with ``variables`` on every data set (and with the distractors)."""
    s = self.settings
    leaves = _leaf_ids(variables)
    variables = self._embedder.local_variables(variables)
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
    if not embedding_store.setting(self.config, "keep_embeddings"):
      for store in stores:
        store.remove()
    return metrics
