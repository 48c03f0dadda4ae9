"""ROADMAP (SupAP + calibration) on CUB-200-2011 with DeiT-B.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: R@1 77.4 (DeiT-B), from the papers-with-code leaderboard of ROADMAP
  (paperswithcode2.com/paper/244287)
Data: CUB-200-2011 in its original layout under data_dir: images.txt, image_class_labels.txt,
  images/.
Weights: timm DeiT-B (distilled) ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the SupRank repository's configs dataset=cub model=deit_base optimizer=cub_deit
  loss=ROADMAP_SOP max_iter=150 dataset.sampler.batch_size=128; no README gives a command for DeiT-B
  (roadmap/cub_deit_small.py is the README's DeiT-S run)

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/cub_deit_base.py --workdir runs/roadmap_cub_deit_base \
    --config.input.data_dir=/data/CUB_200_2011 \
    --config.model.pretrained_path=/weights/deit_base_distilled_patch16_224.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="cub", model="deit_base", optimizer="cub_deit", loss="roadmap_sop",
                              num_epochs=150)
  config.input.global_batch_size = 128
  return config
