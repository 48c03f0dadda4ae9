"""ROADMAP (SupAP + calibration) on SOP with DeiT-B.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: R@1 86.0 (DeiT-B), from the papers-with-code leaderboard of ROADMAP
  (paperswithcode2.com/paper/244287)
Data: Stanford Online Products in its original layout under data_dir: Ebay_train.txt, Ebay_test.txt
  and the image folders.
Weights: timm DeiT-B (distilled) ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the SupRank repository's configs dataset=sop model=deit_base optimizer=sop_deit_sch
  loss=ROADMAP_SOP max_iter=75 dataset.sampler.batch_size=128 dataset.sampler.batches_per_super_tuple=10;
  no README gives a command for DeiT-B (roadmap/sop_deit_small.py is the README's DeiT-S run)

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/sop_deit_base.py --workdir runs/roadmap_sop_deit_base \
    --config.input.data_dir=/data/Stanford_Online_Products \
    --config.model.pretrained_path=/weights/deit_base_distilled_patch16_224.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="sop", model="deit_base", optimizer="sop_deit_sch", loss="roadmap_sop",
                              num_epochs=75)
  config.input.global_batch_size = 128
  config.input.batches_per_super_tuple = 10
  return config
