"""ROADMAP (SupAP + calibration) on CUB-200-2011 with DeiT-S.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: not available in the sources this repository could read (see the paper)
Data: CUB-200-2011 in its original layout under data_dir: images.txt, image_class_labels.txt,
  images/.
Weights: timm DeiT-S (distilled) ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the ROADMAP repository's README (CUB-200-2011, DeiT): experience.seed=333
  experience.max_iter=150 optimizer=cub_deit model=deit transform=cub dataset=cub
  dataset.sampler.kwargs.batch_size=128 loss=roadmap

Its files: model=deit is DeiT-S (deit_small here, as roadmap/sop_deit_small.py); optimizer=cub_deit
is one AdamW over every parameter at a constant 1e-6, weight decay 5e-4, no scheduler; dataset=cub with
transform=cub is SupRank's cub; loss=roadmap weighs SupAP and calibration 1 and 1; evaluation every 5
epochs.

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/cub_deit_small.py --workdir runs/roadmap_cub_deit_small \
    --config.input.data_dir=/data/CUB_200_2011 \
    --config.model.pretrained_path=/weights/deit_small_distilled_patch16_224.safetensors
"""

from suprank_jax.configs import common, roadmap


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  return roadmap.readme_run(dataset="cub", model="deit_small", optimizer="roadmap_repo_cub_deit",
                            loss="roadmap_repo_roadmap", num_epochs=150)
