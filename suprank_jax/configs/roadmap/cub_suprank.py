"""ROADMAP (SupAP + calibration) on CUB-200-2011 with ResNet-50, as the SupRank repository's files compose it.

Paper: ROADMAP, Ramzi et al., NeurIPS 2021 (the ROADMAP repository's own run is ``roadmap/cub.py``)
Published: none for this composition
Data, weights: as ``roadmap/cub.py``.
Original: the SupRank repository's configs dataset=cub_big model=resnet_ln_max optimizer=cub
  loss=ROADMAP_SOP max_iter=200 dataset.sampler.batch_size=128; no README gives a command for it

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/cub_suprank.py --workdir runs/roadmap_cub_suprank \
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
