"""ROADMAP (SupAP + calibration) on SOP with ResNet-50.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: R@1 83.1 (ResNet-50), from the papers-with-code leaderboard of ROADMAP
  (paperswithcode2.com/paper/244287); mAP@R not available in the sources this repository could read
  (see the paper)
Data: Stanford Online Products in its original layout under data_dir: Ebay_train.txt, Ebay_test.txt
  and the image folders.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the SupRank repository's configs dataset=sop model=resnet_ln optimizer=sop
  loss=ROADMAP_SOP (max_iter 100)

The ROADMAP repository's own run of this table (max_iter=100 optimizer=sop model=resnet dataset=sop
loss=roadmap) used batch 128 with 10 batches per super-class pair and seed 333:
--config.input.global_batch_size=128 --config.input.batches_per_super_tuple=10 --config.seed=333.

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/sop.py --workdir runs/roadmap_sop \
    --config.input.data_dir=/data/Stanford_Online_Products \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="sop", model="resnet_ln", optimizer="sop", loss="roadmap_sop",
                              num_epochs=100)
  return config
