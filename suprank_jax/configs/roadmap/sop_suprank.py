"""ROADMAP (SupAP + calibration) on SOP with ResNet-50, as the SupRank repository's files compose it.

Paper: ROADMAP, Ramzi et al., NeurIPS 2021 (the ROADMAP repository's own run is ``roadmap/sop.py``)
Published: none for this composition
Data, weights: as ``roadmap/sop.py``.
Original: the SupRank repository's configs dataset=sop model=resnet_ln optimizer=sop loss=ROADMAP_SOP
  and default.yaml (max_iter 100, seed 0); no README gives a command for it

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/sop_suprank.py --workdir runs/roadmap_sop_suprank \
    --config.input.data_dir=/data/Stanford_Online_Products \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  return experiment.compose(dataset="sop", model="resnet_ln", optimizer="sop", loss="roadmap_sop", num_epochs=100)
