"""ArcFace on H-GLDv2, with the original's landmark model.

Paper: SupRank, Ramzi et al., 'Optimization of Rank Losses for Image Retrieval', TPAMI (arXiv
  2309.08250), its landmark retrieval results: Revisited Oxford and Paris (mAP, Medium and Hard) and the
  H-GLDv2 benchmark (mAP@100, H-AP, ASI, NDCG)
Published: not read here (see the paper)
Data: H-GLDv2 (landmark, cluster, overall cluster): GLDv2-clean in its original layout under data_dir:
  train_clean.csv, index_image_to_landmark.csv, retrieval_solution_v2.1.csv, images/train/, index/,
  test/, and {train,index}_label_to_subcategory_with_clusters.csv; Revisited Oxford and Paris under
  config.evals.roxf_rpar.data_dir: roxford5k/gnd_roxford5k.pkl, roxford5k/jpg/,
  rparis6k/gnd_rparis6k.pkl, rparis6k/jpg/ (and revisitop1m/ for the 1M distractors).
Weights: torchvision ResNet-101 ImageNet weights (``config.model.pretrained_path``) and the original's
  learned whitening (``config.model.whitening_path``: its
  gldv2_resnet101_gem_normalized_d+2048_imssize+1024x1024.trch, an nn.Linear state dict); nothing is
  downloaded.
Original: the SupRank repository's configs dataset=gldv2_hier model=resnet_101_LM optimizer=gldv2_bench
  loss=arcface_LM evaluation=landmark_evaluation, then python suprank/evaluate_landmark.py --config
  <checkpoint> [--multi-scale] (``landmarks/__init__.py``); it gives no command for this run (its class
  weights take ${optimizer.opt.net}, which only the single-optimizer file gldv2_bench defines).

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/landmarks/arcface_hgldv2.py \
    --workdir runs/landmarks_arcface_hgldv2 \
    --config.input.data_dir=/data/gldv2 --config.evals.roxf_rpar.data_dir=/data/revisited \
    --config.model.pretrained_path=/weights/resnet101.safetensors \
    --config.model.whitening_path=/weights/gldv2_resnet101_gem_normalized_d+2048_imssize+1024x1024.trch
"""

from suprank_jax.configs import common, landmarks


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  return landmarks.compose(dataset="gldv2_hier", loss="arcface_lm", optimizer="gldv2_bench")
