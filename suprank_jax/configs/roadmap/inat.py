"""ROADMAP (SupAP + calibration) on iNaturalist-2018 with ResNet-50.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: not available in the sources this repository could read (see the paper) (the leaderboard
  row for ResNet-50 is cut off in the stored page)
Data: iNaturalist-2018 (iNat-base: species, super-category) in its original layout under data_dir:
  Inat_dataset_splits/Inaturalist_{train,test}_set1.txt (the original's splits), train_val2018/.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the ROADMAP repository's README: seed=333 max_iter=90 optimizer=inaturalist model=resnet
  dataset=inaturalist batch_size=384 loss=roadmap_inat (3 GPUs)

Seed 333 in the ROADMAP repository: --config.seed=333.

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/inat.py --workdir runs/roadmap_inat \
    --config.input.data_dir=/data/Inaturalist \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="inat_base", model="resnet_ln", optimizer="inat", loss="roadmap_inat",
                              num_epochs=90)
  config.input.global_batch_size = 384
  return config
