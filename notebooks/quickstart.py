# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # suprank_jax quickstart: train, look, search
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/<owner>/<repo>/blob/main/notebooks/quickstart.ipynb)
#
# This notebook trains ROADMAP (0.9 SupAP + 0.1 calibration loss) on the digits data set that ships
# with scikit-learn (1,797 grey 8x8 images; labels: the digit, and a shape family: loops, strokes,
# curves), with the project's real trainer. Then it
#
# 1. plots the loss and the test metrics from the run's `metrics.jsonl`,
# 2. shows the top results of a few test queries, framed by relevance,
# 3. plots the rank surrogates of the papers and what the SupAP / SupHAP losses measure,
# 4. exports the test set as a search index and searches it with an image file.
#
# It runs top to bottom on a CPU laptop in about two minutes, and on Colab (a GPU or TPU runtime is
# used when there is one). The notebook keeps no state between runs: its run folder is wiped first.

# %%
# Installs the project in Colab (or wherever it is not installed yet), with the jax build of the
# runtime's accelerator. In a checkout: `pip install -e ".[test]"` once instead.
import importlib.util
import os
import shutil
import subprocess
import sys

REPO_URL = "https://github.com/<owner>/<repo>"
if importlib.util.find_spec("suprank_jax") is None:
  subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", f"git+{REPO_URL}"])
  if shutil.which("nvidia-smi"):  # a GPU runtime
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "jax[cuda12]>=0.10.2,<0.11"])
  elif os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_ACCELERATOR_TYPE") or os.path.exists("/dev/accel0"):
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "jax[tpu]>=0.10.2,<0.11"])

# %% tags=["parameters"]
TOTAL_STEPS = 600  # training steps (batch 120); the notebook's test runs a few
WORKDIR = "/tmp/suprank_quickstart"  # the run's folder: wiped below, so that every run starts afresh
NUM_QUERIES = 6  # rows of the retrieval picture
TOP_K = 8  # results per query

# %%
import functools
import json

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from suprank_jax import hierarchy
from suprank_jax.configs import digits
from suprank_jax.evaluation import evaluator, pictures
from suprank_jax.index import export, search
from suprank_jax.index import store as index
from suprank_jax.input_pipeline import datasets
from suprank_jax.losses import ap, hap, ranks
from suprank_jax.models import build_model
from suprank_jax.runtime import parallel
from suprank_jax.training import train

print("devices:", jax.devices())

# %% [markdown]
# ## 1. Train
#
# `digits.get_config()` is the config of `python -m suprank_jax.train --config suprank_jax/configs/digits.py`;
# here the run is evaluated four times along the way, so that the metric curves have points.

# %%
config = digits.get_config()
config.total_steps = TOTAL_STEPS
config.log_every_steps = max(1, TOTAL_STEPS // 12)
config.eval_every_steps = max(1, TOTAL_STEPS // 4)
config.checkpoint_every_steps = TOTAL_STEPS
shutil.rmtree(WORKDIR, ignore_errors=True)
state, summary = train.train_and_evaluate(config, WORKDIR)
print(train.summary_table(summary))

# %% [markdown]
# ## 2. Loss and metric curves, from `metrics.jsonl`
#
# Each line of the file is one log step (`"split": "train"`) or one evaluation (`"split": "test"`).

# %%
with open(os.path.join(WORKDIR, "metrics.jsonl")) as f:
  records = [json.loads(line) for line in f]
train_rows = [r for r in records if r["split"] == "train"]
test_rows = [r for r in records if r["split"] == "test"]

fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 3.6))
for key, label in (("loss", "total"), ("loss/sup_ap", "SupAP (x 0.9)"), ("loss/calibration", "calibration (x 0.1)")):
  ax_loss.plot([r["step"] for r in train_rows], [r[key] for r in train_rows], marker=".", label=label)
ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
ax_loss.legend()
for key in ("R@1_level0", "mAP@R_level0", "H-AP_multi"):
  ax_metric.plot([r["step"] for r in test_rows], [r[key] for r in test_rows], marker="o", label=key)
ax_metric.set(xlabel="step", ylabel="test metric", title="test split (896 queries)", ylim=(0, 1.02))
ax_metric.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Retrievals
#
# A few test queries (blue) and their nearest test images, nearest first, framed by relevance: the
# same digit (green), the same shape family only (orange), or neither (red). The trainer writes the
# same picture after each evaluation (`pictures.write_evaluation_picture`).

# %%
test_evaluator = evaluator.make_evaluator(
  "test", config.evals.test, config.input, model=build_model(config.model), mesh=parallel.make_mesh()
)
Image.fromarray(pictures.evaluation_picture(test_evaluator, state.variables(), num_queries=NUM_QUERIES, k=TOP_K))

# %% [markdown]
# ## 4. What the losses optimise
#
# The rank of a positive item `i` is `1 + sum_j H(s_j - s_i)` with the Heaviside step `H`, which has no
# useful gradient. Smooth-AP replaces every step by a sigmoid of temperature `tau`; SupRank (ROADMAP,
# HAPPIER) keeps `H` among positives and replaces it, for negatives, by an upper bound of `H`: a
# sigmoid for `x <= 0`, `0.5 + sigmoid` up to `delta`, then a line of slope `rho`. A negative scored above a
# positive is thus always pushed down, and the AP computed with these ranks is a lower bound of the AP.

# %%
x = jnp.linspace(-0.1, 0.1, 801)
fig, ax = plt.subplots(figsize=(6.5, 3.6))
ax.plot(x, ranks.heaviside(x), label="Heaviside H (the true rank)", lw=2.5, color="black")
ax.plot(x, ranks.tau_sigmoid(x, tau=0.01), label="sigmoid, tau=0.01 (Smooth-AP)")
ax.plot(x, ranks.suprank_surrogate(x), label="SupRank upper bound (tau=0.01, delta=0.05, rho=100)")
ax.set(
  xlabel="s_j - s_i  (score of item j minus score of the ranked positive i)",
  ylabel="contribution to rank(i)",
  ylim=(-0.1, 3.0),
  title="rank surrogates",
)
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# On a small example, one query ranks ten items with the scores below; we move the score of item 2
# from -1 to 1 and compute each loss. With the Heaviside step everywhere, `ap.ap_family_loss` is exactly
# `1 - AP` (`1 - H-AP` with graded relevances). SupAP and SupHAP stay above it (the AP they compute is a
# lower bound of the AP) and meet it where the ranking is right; Smooth-AP follows it without bounding it.
# With graded relevances, item 2 (same shape family only) scored above the two exact matches costs
# H-AP, and SupHAP penalises it steeply.


# %%
def per_query(loss_fn):
  """``loss_fn`` returning one value per row (query), jit-compiled."""
  return jax.jit(functools.partial(loss_fn, reduce_fn=None))


base = np.array([0.9, 0.75, 0.0, 0.45, 0.3, 0.1, -0.1, -0.3, -0.5, -0.7], np.float32)
sweep = np.linspace(-1.0, 1.0, 401, dtype=np.float32)
scores = np.repeat(base[None], len(sweep), axis=0)
scores[:, 2] = sweep  # one row (query) per score of item 2
# Binary relevance: items 0, 1 and 2 are relevant.
positives = np.zeros(scores.shape, bool)
positives[:, :3] = True
# Graded: levels 2 (same digit: items 0, 1), 1 (same shape family: items 2, 3), 0 (others); HAPPIER's
# 'pop' relevances.
levels = np.zeros(scores.shape, np.int32)
levels[:, :2] = 2
levels[:, 2:4] = 1
relevances = hierarchy.relevance_matrix(jnp.asarray(levels), 2, kind="pop")

fig, (ax_ap, ax_hap) = plt.subplots(1, 2, figsize=(11, 3.6))
ax_ap.plot(
  sweep,
  per_query(ap.ap_family_loss)(scores, positives.astype(np.int32), positives.astype(np.float32)),
  label="1 - AP (Heaviside)",
  lw=2.5,
  color="black",
)
ax_ap.plot(sweep, per_query(ap.sup_ap_loss)(scores, positives), label="SupAP loss")
ax_ap.plot(sweep, per_query(ap.smooth_ap_loss)(scores, positives), label="Smooth-AP loss", ls="--")
ax_ap.set(xlabel="score of item 2 (relevant)", ylabel="loss", title="binary relevance: AP")
ax_hap.plot(
  sweep, per_query(ap.ap_family_loss)(scores, levels, relevances), label="1 - H-AP (Heaviside)", lw=2.5, color="black"
)
ax_hap.plot(sweep, per_query(hap.sup_hap_loss)(scores, levels, relevances), label="SupHAP loss")
ax_hap.plot(sweep, per_query(hap.smooth_hap_loss)(scores, levels, relevances), label="Smooth-HAP loss", ls="--")
ax_hap.set(xlabel="score of item 2 (same shape family)", title="graded relevance: H-AP")
for axis in (ax_ap, ax_hap):
  for s in np.delete(base, 2):
    axis.axvline(s, color="grey", lw=0.5, alpha=0.5)  # the other items' scores
  axis.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Export the test set as an index and search it
#
# The command-line equivalents are `python -m suprank_jax.export --workdir WORKDIR --split test --out INDEX`
# and `python -m suprank_jax.search --index INDEX query.png --picture out.png`. The query is a
# training image (not in the test gallery), saved as a PNG file.

# %%
index_dir = os.path.join(WORKDIR, "index")
export.export_index(WORKDIR, index_dir, split="test")
test_index = index.load_index(index_dir)
query_png = os.path.join(WORKDIR, "query.png")
Image.fromarray(datasets.get_source(config.input, "train").load_image(5)[..., 0]).save(query_png)
results = search.search_files(test_index, [query_png], k=TOP_K)
print(search.format_results(test_index, results))
Image.fromarray(search.results_picture(test_index, results))
