"""ROADMAP (SupAP + calibration) on CUB-200-2011 with ResNet-50.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: R@1 68.5 (ResNet-50), from the papers-with-code leaderboard of ROADMAP
  (paperswithcode2.com/paper/244287); mAP@R not available in the sources this repository could read
  (see the paper)
Data: CUB-200-2011 in its original layout under data_dir: images.txt, image_class_labels.txt,
  images/.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the ROADMAP repository's README: seed=333 max_iter=200 optimizer=cub model=resnet_max_ln
  transform=cub_big dataset=cub batch_size=128 loss=roadmap

The ROADMAP loss of the SOP/CUB configs (ROADMAP_SOP.yaml); seed 333 in the ROADMAP repository:
--config.seed=333.

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/cub.py --workdir runs/roadmap_cub \
    --config.input.data_dir=/data/CUB_200_2011 \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="cub_big", model="resnet_ln_max", optimizer="cub", loss="roadmap_sop",
                              num_epochs=200)
  config.input.global_batch_size = 128
  return config
