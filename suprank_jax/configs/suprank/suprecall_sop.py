"""SupRecall (recall@k surrogate + calibration) on SOP.

Paper: SupRank, Ramzi et al., 'Optimization of Rank Losses for Image Retrieval', TPAMI (arXiv
2309.08250), the recall@k experiments
Published: not available in the sources this repository could read (see the paper)
Data: Stanford Online Products in its original layout under data_dir: Ebay_train.txt, Ebay_test.txt
  and the image folders.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the SupRank repository's configs dataset=sop model=resnet_ln optimizer=sop
  loss=ROADRatk_SOP (weight: null -> 1/2 each)

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/suprank/suprecall_sop.py --workdir runs/suprank_suprecall_sop \
    --config.input.data_dir=/data/Stanford_Online_Products \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="sop", model="resnet_ln", optimizer="sop", loss="roadratk_sop",
                              num_epochs=100)
  return config
