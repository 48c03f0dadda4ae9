"""The landmark experiments of the SupRank paper: the original's landmark model trained on GLDv2 or H-GLDv2,
evaluated on Revisited Oxford/Paris and the H-GLDv2 benchmark."""

from suprank_jax.configs.experiments.record import from_files
from suprank_jax.evaluation import retrieval

__all__ = ["EXPERIMENTS", "INTRO", "TITLE", "landmark_metrics"]

TITLE = "Landmarks: GLDv2 and H-GLDv2, evaluated on Revisited Oxford/Paris and the H-GLDv2 benchmark"
INTRO = """\
The SupRank paper's landmark experiments (`suprank_jax/configs/landmarks/`): the original's landmark
model `resnet_101_lm` (ResNet-101, GeM with a learnable exponent, the pooled features L2-normalised then
projected to 2048-d by a projection that starts from the original's learned whitening, frozen batch
norm, bf16 compute), trained on GLDv2-clean (`gldv2`, landmark labels) or H-GLDv2 (`gldv2_hier`:
landmark, cluster, overall cluster) with at most 8 images of a class per epoch (the original's
`reduce_per_class`), 100 epochs, evaluated every 20 epochs on Revisited Oxford and Paris
(`config.evals.roxf_rpar`, [Landmark evaluation](evaluation.md#landmark-evaluation-revisited-oxfordparis-and-the-h-gldv2-benchmark))
and on the H-GLDv2 benchmark (`config.evals.hgldv2`). The original gives no command for these runs;
each composes the original's config files that fit together (a loss whose class weights take
`${optimizer.opt.net}` needs the single-optimizer `gldv2_bench` file, one that takes
`${optimizer.opt.head}` the backbone/head `gldv2` file), with `evaluation=landmark_evaluation` (the
default `accuracy_calculator` cannot evaluate the Revisited sets of the GLDv2 data set files); the
original then evaluates a checkpoint with `python suprank/evaluate_landmark.py --config <checkpoint>
[--multi-scale]` (here `python3 -m suprank_jax.evaluate`).

Other compositions are one argument away, e.g. retrieval-SfM-120k (`dataset=sfm120k`, the original's
`sfm120k.yaml`, evaluated on Revisited Oxford/Paris):
`--config 'suprank_jax/configs/experiment.py:dataset=sfm120k,model=resnet_101_lm,optimizer=gldv2,loss=norm_softmax'`.
"""


def landmark_metrics(config):
  """The landmark evaluations' metrics. The Revisited evaluation reads no retrieval metric setting; the
  H-GLDv2 benchmark keeps the default protocol, whose H-AP is the original's ``hap_LM`` (relevances from
  each query's ranked index; the original protocol of ``retrieval.py`` takes them from the query set),
  with P@1, P@100 and mAP@100."""
  for ev in config.evals.values():
    ev.metrics = retrieval.default_config()
  if "hgldv2" in config.evals:
    config.evals.hgldv2.metrics.recall_at = ()
    config.evals.hgldv2.metrics.precision_at = (1, 100)
    config.evals.hgldv2.metrics.map_at = (100,)


_NET = "its class weights take `${optimizer.opt.net}`, which only the single-optimizer file `gldv2_bench` defines."
_HEAD = "its class weights take `${optimizer.opt.head}`, which the backbone/head file `gldv2` defines."
_PROXIES = "its proxies have their own Adam with `${optimizer.sch.head}`, which the backbone/head file `gldv2` defines."
_DATA = {"gldv2": "GLDv2", "gldv2_hier": "H-GLDv2"}


def _landmark(name, what, dataset, loss_file, optimizer, why):
  """``landmarks/<name>``: ``what`` trained on ``dataset`` with the original's ``loss_file`` (the group of
  its name in lower case) and ``optimizer`` files, the latter for the reason ``why``."""
  return from_files(
    f"landmarks/{name}",
    f"{what} on {_DATA[dataset]}, with the original's landmark model",
    dict(dataset=dataset, model="resnet_101_LM", optimizer=optimizer, loss=loss_file, evaluation="landmark_evaluation"),
    paper="suprank",
    table="its landmark retrieval results: Revisited Oxford and Paris (mAP, Medium and Hard) and the H-GLDv2 "
    "benchmark (mAP@100, H-AP, ASI, NDCG)",
    weights=("resnet101.safetensors", "gldv2_resnet101_gem_normalized_d+2048_imssize+1024x1024.trch"),
    finish=(landmark_metrics,),
    notes=f"The optimizer file: {why}",
  )


EXPERIMENTS = (
  _landmark("arcface_gldv2", "ArcFace", "gldv2", "arcface_LM", "gldv2_bench", _NET),
  _landmark("arcface_hgldv2", "ArcFace", "gldv2_hier", "arcface_LM", "gldv2_bench", _NET),
  _landmark("csl_hgldv2", "CSL (three-level proxies)", "gldv2_hier", "csl_gldv2_L3", "gldv2", _PROXIES),
  _landmark("happier_hgldv2", "HAPPIER (SupHAP + normalised softmax)", "gldv2_hier", "HAPPIER_pp_LM", "gldv2", _HEAD),
  _landmark("norm_softmax_gldv2", "Normalised softmax (NSM)", "gldv2", "norm_softmax", "gldv2", _HEAD),
  _landmark("norm_softmax_hgldv2", "Normalised softmax (NSM)", "gldv2_hier", "norm_softmax", "gldv2", _HEAD),
  _landmark("roadmap_gldv2", "ROADMAP (SupAP + normalised softmax)", "gldv2", "ROADMAP_pp_LM", "gldv2_bench", _NET),
  _landmark(
    "roadmap_hgldv2", "ROADMAP (SupAP + normalised softmax)", "gldv2_hier", "ROADMAP_pp_LM", "gldv2_bench", _NET
  ),
)
