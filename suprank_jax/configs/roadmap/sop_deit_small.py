"""ROADMAP (SupAP + calibration) on SOP with DeiT-S.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: not available in the sources this repository could read (see the paper)
Data: Stanford Online Products in its original layout under data_dir: Ebay_train.txt, Ebay_test.txt
  and the image folders.
Weights: timm DeiT-S (distilled) ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the ROADMAP repository's README (SOP, transformer backbone): experience.seed=333
  experience.max_iter=75 optimizer=sop_deit model=deit transform=sop dataset=sop
  dataset.sampler.kwargs.batch_size=128 dataset.sampler.kwargs.batches_per_super_pair=10 loss=roadmap

Its files: model=deit is DeiT-S ('vit_deit_distilled': the distilled checkpoint without its
distillation token, the class token, no projection): deit_small here; optimizer=sop_deit, one AdamW
1e-5, weight decay 5e-4, MultiStepLR at epochs 25 and 50 with gamma 0.3, is SupRank's sop_deit_sch;
loss=roadmap weighs SupAP and calibration 1 and 1; evaluation every 5 epochs.

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/sop_deit_small.py --workdir runs/roadmap_sop_deit_small \
    --config.input.data_dir=/data/Stanford_Online_Products \
    --config.model.pretrained_path=/weights/deit_small_distilled_patch16_224.safetensors
"""

from suprank_jax.configs import common, roadmap


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  return roadmap.readme_run(dataset="sop", model="deit_small", optimizer="sop_deit_sch",
                            loss="roadmap_repo_roadmap", num_epochs=75, batches_per_super_tuple=10)
