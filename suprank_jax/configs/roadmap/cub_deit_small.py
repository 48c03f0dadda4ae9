"""ROADMAP (SupAP + calibration) on CUB-200-2011 with DeiT-S.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: not available in the sources this repository could read (see the paper)
Data: CUB-200-2011 in its original layout under data_dir: images.txt, image_class_labels.txt,
  images/.
Weights: timm DeiT-S (distilled) ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the ROADMAP repository's README: seed=333 max_iter=150 optimizer=cub_deit model=deit
  transform=cub dataset=cub batch_size=128 loss=roadmap

Seed 333 in the ROADMAP repository: --config.seed=333.

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/cub_deit_small.py --workdir runs/roadmap_cub_deit_small \
    --config.input.data_dir=/data/CUB_200_2011 \
    --config.model.pretrained_path=/weights/deit_small_distilled_patch16_224.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="cub", model="deit_small", optimizer="cub_deit", loss="roadmap_sop",
                              num_epochs=150)
  config.input.global_batch_size = 128
  return config
