"""Evaluation protocols (config.protocol): the original SupRank evaluation code's numbers on every golden
metric case, the default protocol unchanged, 'both', and galleries that contain the queries."""

import numpy as np
import pytest

from suprank_jax.evaluation import landmarks
from suprank_jax.evaluation import metrics as M
from suprank_jax.evaluation import retrieval as R
from tests.conftest import assert_close_to_reference, golden_case_names

# ------------------------------------------------------------------------------------------------
# The original evaluation code's names and settings -> ours (the one place where they are mapped).


def _our_key(name, hyperparameters):
  """Our key for one of the original's metric names (a golden metric key)."""
  if name == "mapM":  # Revisited Oxford/Paris (landmark_evaluation.compute_map_M_and_H)
    return "mAP_medium"
  if name == "mapH":
    return "mAP_hard"
  # The original writes true recall under R@k (overwriting the recall rate) for k in true_recall.
  if name.partition("_")[0] in {f"R@{k}" for k in hyperparameters.get("true_recall", ())}:
    return f"true_{name}"
  return name


def _our_config(hyperparameters, protocol="original"):
  """Our evaluation config for the original's AccuracyCalculator arguments."""
  hp = hyperparameters
  cfg = R.default_config()
  cfg.protocol = protocol
  cfg.hierarchy_levels = tuple(hp["compute_for_hierarchy_levels"])
  cfg.true_recall_at = tuple(hp["true_recall"])
  cfg.recall_at = tuple(k for k in hp["recall_rate"] if k not in hp["true_recall"])
  cfg.precision_at = tuple(sorted({1, *hp["precision_rate"]}))  # the original always computes P@1
  cfg.map_at = tuple(hp["map_at_k"])
  cfg.level_ap = tuple(hp["hard_ap_for_level"])
  cfg.binary_asi = hp["with_binary_asi"]
  cfg.binary_metrics = tuple(m for m in ("AP", "mAP@R") if m not in hp["exclude"])
  cfg.multi_level_metrics = tuple(m for m in ("H-AP", "ASI", "NDCG") if m not in hp["exclude"])
  cfg.original_metric_batch_size = hp["metric_batch_size"]
  cfg.relevance.type = hp["relevance"]["type"]
  cfg.relevance.alpha = hp["relevance"]["alpha"]
  return cfg


def _run_case(case, g, protocol="original"):
  """Our metrics on a golden metric case, in the case's mode."""
  if "landmark" in case["producer"]:  # one protocol only: it is already the original's
    gnd = [{k: g[f"q{i}_{k}"] for k in ("easy", "hard", "junk")} for i in range(case["hyperparameters"]["n_queries"])]
    return landmarks.evaluate_revisited(g["query_features"], g["gallery_features"], gnd)
  gallery = (g["ref_features"], g["ref_labels"]) if "ref_features" in g else ()
  cfg = _our_config(case["hyperparameters"], protocol)
  return R.evaluate_retrieval(g["features"], g["labels"], *gallery, config=cfg)


def _golden_metrics(case):
  values = case["values"]
  return values["metrics"] if "metrics" in values else {k: values[k] for k in ("mapM", "mapH")}


# ------------------------------------------------------------------------------------------------
# Golden cases.


@pytest.mark.parametrize("name", golden_case_names("metrics"))
def test_original_protocol_gives_every_golden_metric(golden, name):
  case, g = golden(name)
  ours = _run_case(case, g)
  expected = _golden_metrics(case)
  assert expected
  for original_name, value in expected.items():
    # The golden tolerance for metrics (the reference computes parts of them in float32).
    assert_close_to_reference(
      ours[_our_key(original_name, case["hyperparameters"])], value, rtol=1e-6, name=original_name
    )
  if "overall_accuracy_hook" in case["values"]:
    overall = M.overall_accuracy(ours, protocol="original")
    for original_name, value in case["values"]["overall_accuracy_hook"].items():
      assert_close_to_reference(
        overall[_our_key(original_name, case["hyperparameters"])], value, rtol=1e-6, name=f"overall {original_name}"
      )


@pytest.mark.parametrize("name", golden_case_names("metrics", "metrics_"))
def test_original_relevances_are_the_query_sets_own_table(golden, name):
  case, g = golden(name)
  table = R._original_relevance_table(g["labels"], _our_config(case["hyperparameters"]))
  np.testing.assert_array_equal(table, g["relevances"].astype(np.float64))


# The README's numbers for the default protocol (section "Where our numbers differ from the original
# code"), at full precision: the default protocol is unchanged by the original one.
DEFAULT_NUMBERS = {
  "metrics_same_source_L2_0": {
    "H-AP_multi": 0.2080241614859011,
    "AP_level0": 0.1876091789722427,
    "mAP@R_level1": 0.10767729434836487,
    "NDCG_multi": 0.6125756928861045,
    "AP#1_exclude": 0.20200759783047353,
  },
  "metrics_query_gallery_L2_0": {
    "H-AP_multi": 0.25922097936572275,
    "AP_level0": 0.24139194960809926,
    "mAP@R_level1": 0.13628303188675697,
    "NDCG_multi": 0.6306333035240568,
    "ASI_multi": 0.32021099880945175,
    "AP#1_exclude": 0.22795668036999278,
  },
}


@pytest.mark.parametrize("name", sorted(DEFAULT_NUMBERS))
def test_default_protocol_numbers_are_unchanged(golden, name):
  case, g = golden(name)
  ours = _run_case(case, g, protocol="default")
  for key, value in DEFAULT_NUMBERS[name].items():
    assert ours[key] == value, key
  readme_hap = {"metrics_same_source_L2_0": 0.20802, "metrics_query_gallery_L2_0": 0.2592}[name]
  assert ours["H-AP_multi"] == pytest.approx(readme_hap, abs=5e-5)


def test_both_returns_default_and_original_metrics_under_distinct_keys(golden):
  case, g = golden("metrics_query_gallery_L2_0")
  default = _run_case(case, g, protocol="default")
  original = _run_case(case, g, protocol="original")
  both, per_query = R.evaluate_retrieval(
    g["features"],
    g["labels"],
    g["ref_features"],
    g["ref_labels"],
    config=_our_config(case["hyperparameters"], "both"),
    return_per_query=True,
  )
  assert set(both) == set(default) | {f"original/{k}" for k in original}
  for key, value in default.items():
    assert both[key] == value, key  # bit for bit: the same ranks from the shared ranking
  for key, value in original.items():
    assert both[f"original/{key}"] == value, key
  assert both["H-AP_multi"] == pytest.approx(0.2592, abs=5e-5)
  assert both["original/H-AP_multi"] == pytest.approx(case["values"]["metrics"]["H-AP_multi"], rel=1e-6)
  assert per_query["original/AP_level1"].shape == (len(g["labels"]),)
  overall = M.overall_accuracy(both, protocol="both")
  assert overall["original/ASI"] == pytest.approx(
    np.mean([both["original/ASI_level0"], both["original/ASI_level1"], both["original/ASI_multi"]])
  )
  assert overall["ASI"] == pytest.approx(np.mean([both["ASI_level0"], both["ASI_level1"]]))


# ------------------------------------------------------------------------------------------------
# Naive numpy implementations: dense sorted label lists, the formulas of the original's metrics.py.


def _dense_lists(scores, query_labels, gallery_labels, removed):
  """Level of every ranked item ([Q, N - 1]) and its per-column agreement ([Q, N - 1, L]).

  ``removed[i]`` is the gallery index left out of query i's list.
  """
  order = np.argsort(-scores, axis=1, kind="stable")
  order = order[order != np.asarray(removed)[:, None]].reshape(len(scores), -1)
  agree = gallery_labels[order] == query_labels[:, None, :]
  return agree.sum(-1), agree


def _pop_table(levels, num_levels):
  counts = np.stack([(levels == v).sum(1) for v in range(num_levels + 1)], 1).astype(np.float64)
  weights = np.arange(num_levels + 1) / max(num_levels - 1, 1)
  return np.where(counts > 0, weights / np.maximum(counts, 1), 0.0).astype(np.float32).astype(np.float64)


def _dense_values(levels, agree, table, cfg, *, original):
  """Per-query values of the metrics of ``cfg`` (NaN where undefined)."""
  num_q, m = levels.shape
  pos = np.arange(1, m + 1)
  out = {}
  with np.errstate(invalid="ignore", divide="ignore"):
    for h in cfg.hierarchy_levels:
      b = agree[:, :, h].astype(np.float64)
      big_r = b.sum(1)
      prec = np.cumsum(b, 1) / pos
      ap_like = lambda mask, denom: np.where(denom > 0, (prec * b * mask).sum(1) / denom, 0.0 if original else np.nan)
      s = f"_level{h}"
      for k in cfg.recall_at:
        out[f"R@{k}{s}"] = b[:, :k].any(1).astype(np.float64)
      for k in cfg.true_recall_at:
        out[f"true_R@{k}{s}"] = b[:, :k].sum(1) / np.minimum(big_r, k)
      for k in cfg.precision_at:
        out[f"P@{k}{s}"] = b[:, :k].mean(1)
      for k in cfg.map_at:
        out[f"mAP@{k}{s}"] = ap_like(pos <= k, np.minimum(big_r, k))
      out[f"AP{s}"] = ap_like(1.0, big_r)
      out[f"mAP@R{s}"] = ap_like(pos[None, :] <= big_r[:, None], big_r)
      out[f"ASI{s}"] = (prec * (pos[None, :] <= big_r[:, None])).sum(1) / big_r
    gains = 2.0**levels - 1
    ideal = -np.sort(-gains, 1)
    out["NDCG_multi"] = (gains / np.log2(1 + pos)).sum(1) / (ideal / np.log2(1 + pos)).sum(1)
    ideal_levels = -np.sort(-levels, 1)
    big_r = (levels > 0).sum(1)
    overlap = sum(
      np.minimum(np.cumsum(levels == v, 1), np.cumsum(ideal_levels == v, 1)) for v in range(1, levels.max() + 1)
    )
    out["ASI_multi"] = (overlap / pos * (pos[None, :] <= big_r[:, None])).sum(1) / big_r
    rel = np.take_along_axis(table, levels, 1)
    hrank = 0
    for v in range(1, table.shape[1]):
      same = (rel == table[:, v : v + 1]) if original else (levels == v)
      hrank = hrank + np.minimum(rel, table[:, v : v + 1]) * np.cumsum(same, 1)
    out["H-AP_multi"] = (hrank / pos).sum(1) / rel.sum(1)
    for v in cfg.level_ap:
      pertinent, kept = levels == v, levels <= v
      ratio = np.nan_to_num(np.cumsum(pertinent, 1) * pertinent / (np.cumsum(kept, 1) * kept))
      out[f"AP#{v}_exclude"] = ratio.sum(1) / pertinent.sum(1)
  return out


def _original_average(values, batch, skip):
  """DictAverage over chunks: chunk means weighted by chunk size, non-finite chunk means left out."""
  total = count = 0.0
  for start in range(0, len(values), batch):
    chunk = values[start : start + batch]
    mean = np.nanmean(chunk) if skip else np.mean(chunk)
    if np.isfinite(mean):
      total, count = total + mean * len(chunk), count + len(chunk)
  return total / count if count else 0.0


def _gallery_holding_the_queries(seed=0):
  """Queries, and a gallery of their (slightly moved) copies plus distractors; some distractors are
  exact duplicates of a query's embedding with other labels, so the nearest item is not the copy."""
  rng = np.random.default_rng(seed)
  num_q, num_d, dim = 70, 150, 12
  fine = rng.integers(0, 25, num_q + num_d)
  labels = np.stack([fine, fine % 6], 1)
  centres = rng.normal(size=(25, dim))
  x = centres[fine] + 1.2 * rng.normal(size=(num_q + num_d, dim))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  query, query_labels = x[:num_q], labels[:num_q]
  copies = query + 0.01 * rng.normal(size=query.shape)
  copies /= np.linalg.norm(copies, axis=1, keepdims=True)
  distractors, distractor_labels = x[num_q:].copy(), labels[num_q:].copy()
  distractors[:10] = query[:10]  # nearer than the copy
  distractor_labels[:10] = (query_labels[:10] + 1) % [25, 6]
  gallery = np.concatenate([copies, distractors])
  gallery_labels = np.concatenate([query_labels, distractor_labels])
  perm = rng.permutation(len(gallery))
  return query, query_labels, gallery[perm], gallery_labels[perm], np.argsort(perm)[:num_q]


def _protocol_config(protocol, batch):
  cfg = R.default_config()
  cfg.update(
    protocol=protocol,
    hierarchy_levels=(0, 1),
    recall_at=(1, 4),
    true_recall_at=(1, 3),
    precision_at=(1, 5),
    map_at=(3,),
    binary_asi=True,
    level_ap=(1, 2),
    original_metric_batch_size=batch,
    chunk_size=32,
  )
  return cfg


def test_gallery_containing_the_queries_original_protocol_drops_each_querys_nearest_item():
  query, query_labels, gallery, gallery_labels, self_index = _gallery_holding_the_queries()
  cfg = _protocol_config("original", batch=16)
  ours = R.evaluate_retrieval(
    query, query_labels, gallery, gallery_labels, config=cfg, gallery_contains_queries=True, self_index=self_index
  )  # ignored by the original protocol
  scores = query @ gallery.T
  nearest = np.argmax(scores, 1)
  assert np.sum(nearest != self_index) == 10
  levels, agree = _dense_lists(scores, query_labels, gallery_labels, nearest)
  counts = (query_labels[:, None, :] == query_labels[None, :, :]).sum(-1)  # the query set against itself
  values = _dense_values(levels, agree, _pop_table(counts, 2), cfg, original=True)
  assert set(values) <= set(ours)
  for key, v in values.items():
    assert ours[key] == pytest.approx(_original_average(v, 16, key.startswith("AP#")), rel=1e-12, abs=1e-15), key


def test_gallery_containing_the_queries_default_protocol_excludes_each_querys_own_copy():
  query, query_labels, gallery, gallery_labels, self_index = _gallery_holding_the_queries()
  cfg = _protocol_config("default", batch=16)
  ours = R.evaluate_retrieval(
    query, query_labels, gallery, gallery_labels, config=cfg, gallery_contains_queries=True, self_index=self_index
  )
  levels, agree = _dense_lists(query @ gallery.T, query_labels, gallery_labels, self_index)
  values = _dense_values(levels, agree, _pop_table(levels, 2), cfg, original=False)
  for key, v in values.items():
    assert ours[key] == pytest.approx(np.nanmean(v), rel=1e-12), key
  # Same numbers as a plain self_index evaluation; the original protocol differs.
  cfg_plain = _protocol_config("default", batch=16)
  assert ours == R.evaluate_retrieval(
    query, query_labels, gallery, gallery_labels, config=cfg_plain, self_index=self_index
  )
  original = R.evaluate_retrieval(
    query, query_labels, gallery, gallery_labels, config=_protocol_config("original", 16), gallery_contains_queries=True
  )
  assert original["R@1_level0"] > ours["R@1_level0"]  # the copy of 10 queries stays at rank 1


def test_original_protocol_same_source_and_separate_gallery_against_naive_numpy():
  rng = np.random.default_rng(1)
  fine = rng.integers(0, 30, 200)
  labels = np.stack([fine, fine % 7], 1)
  labels[:3, 0] = 100 + np.arange(3)  # no fine-level relevant item: NaN true recall, 0 AP
  x = rng.normal(size=(200, 10))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  cfg = _protocol_config("original", batch=48)
  table = _pop_table((labels[:, None, :] == labels[None, :, :]).sum(-1), 2)
  # Same source: each query's nearest item (itself) is left out.
  ours = R.evaluate_retrieval(x, labels, config=cfg)
  levels, agree = _dense_lists(x @ x.T, labels, labels, np.argmax(x @ x.T, 1))
  for key, v in _dense_values(levels, agree, table, cfg, original=True).items():
    assert ours[key] == pytest.approx(_original_average(v, 48, key.startswith("AP#")), rel=1e-12), key
  # Separate gallery: each query's least similar gallery item is left out; relevances from the queries.
  query, query_labels, gallery, gallery_labels = x[:90], labels[:90], x[90:], labels[90:]
  ours = R.evaluate_retrieval(query, query_labels, gallery, gallery_labels, config=cfg)
  scores = query @ gallery.T
  levels, agree = _dense_lists(scores, query_labels, gallery_labels, np.argmin(scores, 1))
  table = _pop_table((query_labels[:, None, :] == query_labels[None, :, :]).sum(-1), 2)
  for key, v in _dense_values(levels, agree, table, cfg, original=True).items():
    assert ours[key] == pytest.approx(_original_average(v, 48, key.startswith("AP#")), rel=1e-12), key


# ------------------------------------------------------------------------------------------------
# Settings checks.


def test_protocol_settings_the_original_cannot_evaluate_raise():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(33, 6))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  labels = np.stack([np.arange(33) % 5, np.arange(33) % 5 % 2], 1)
  cfg = _protocol_config("nonsense", batch=16)
  with pytest.raises(ValueError, match="config.protocol='nonsense'"):
    R.evaluate_retrieval(x, labels, config=cfg)
  cfg = _protocol_config("original", batch=16)
  with pytest.raises(ValueError, match="last chunk holds a single query"):  # 33 = 2 x 16 + 1
    R.evaluate_retrieval(x, labels, config=cfg)
  cfg.original_metric_batch_size = 1
  with pytest.raises(ValueError, match="last chunk holds a single query"):
    R.evaluate_retrieval(x, labels, config=cfg)
  many = np.tile(x, (8, 1))[:257]
  with pytest.raises(ValueError, match="wrong H-AP relevance table"):  # 257 = 256 + 1
    R.evaluate_retrieval(many, np.tile(labels, (8, 1))[:257], config=cfg)
  cfg.original_metric_batch_size = 11
  cfg.binary_metrics = ("AP", "RP")
  with pytest.raises(ValueError, match="no 'RP'"):
    R.evaluate_retrieval(x, labels, config=cfg)
  cfg.binary_metrics = ("AP",)
  cfg.search = "scann"
  with pytest.raises(ValueError, match="search='exact'"):
    R.evaluate_retrieval(x, labels, config=cfg)
  cfg.search = "exact"
  cfg.hierarchy_levels = (0,)
  cfg.level_ap = (1,)
  with pytest.raises(ValueError, match="one label column"):
    R.evaluate_retrieval(x, labels[:, :1], config=cfg)
  for protocol in ("original", "both"):
    cfg.protocol = protocol
    with pytest.raises(ValueError, match="has no self_index"):
      R.evaluate_retrieval(x[:10], labels[:10], x, labels, config=cfg, self_index=np.arange(10))
  cfg.protocol = "original"
  cfg.level_ap = (2,)
  labels_no_level2 = labels.copy()
  labels_no_level2[:11, 0] = 100 + np.arange(11)  # the first chunk has no level-2 pair
  with pytest.raises(ValueError, match="AP#2_exclude"):
    R.evaluate_retrieval(x, labels_no_level2, config=cfg)
  cfg.protocol = "default"
  with pytest.raises(ValueError, match="gallery_contains_queries=True needs self_index"):
    R.evaluate_retrieval(x[:10], labels[:10], x, labels, config=cfg, gallery_contains_queries=True)
