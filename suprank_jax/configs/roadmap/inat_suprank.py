"""ROADMAP (SupAP + calibration) on iNaturalist-2018 with ResNet-50, as the SupRank repository's files compose it.

Paper: ROADMAP, Ramzi et al., NeurIPS 2021 (the ROADMAP repository's own run is ``roadmap/inat.py``)
Published: none for this composition
Data, weights: as ``roadmap/inat.py``.
Original: the SupRank repository's configs dataset=inat_base model=resnet_ln optimizer=inat
  loss=ROADMAP_inat max_iter=90 dataset.sampler.batch_size=384; no README gives a command for it

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/inat_suprank.py --workdir runs/roadmap_inat_suprank \
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
