"""Model groups: the original's ``suprank/config/model/*.yaml`` as ``config.model``.

The original's ``RetrievalNet`` keys map to ours: ``backbone_name`` -> ``name`` (``vit_small`` =
``deit_small``, ``vit_base`` = ``deit_base``, ``vit_base_in21k`` = ``vit_base_patch16``),
``norm_features`` -> ``layer_norm``, ``without_fc`` -> ``embed_dim=0``, ``pooling: default`` ->
average pooling (ResNet) or the class token (ViT), ``freeze_batch_norm`` as is, ``with_autocast``
(fp16 autocast on a GPU) -> ``dtype='bfloat16'`` (bf16 compute, float32 parameters and embeddings),
``pretrained: True`` -> ``pretrained=True``: the run needs ``config.model.pretrained_path``, the
torchvision/timm ImageNet weights the original downloads (nothing is downloaded here). The
original's landmark model ``resnet_101_LM``: ResNet-101, GeM (learnable exponent), the pooled
features L2-normalised then projected to 2048-d by a projection that starts from a learned whitening
(``whiten: <file>`` -> ``whiten=True`` and ``config.model.whitening_path``, a torch ``nn.Linear``
state dict such as the original's ``gldv2_resnet101_gem_normalized_d+2048_imssize+1024x1024.trch``, or
a PCA-whitening written by ``models.whitening.save_whitening``; without a file the projection
starts at random), frozen batch norm, ImageNet weights, mixed precision.
"""

from __future__ import annotations

from suprank_jax.configs import common

__all__ = ["GROUPS"]


def _net(name, **keys):
  def group(config):
    common.set_model(config, name, dtype="bfloat16", **keys)

  group.__doc__ = f"{name} with {keys}"
  return group


GROUPS = {
  # ResNet-50, LayerNorm on the pooled features, 512-d projection, frozen batch norm, ImageNet weights.
  "resnet_ln": _net("resnet50", embed_dim=512, layer_norm=True, pooling="avg", freeze_batch_norm=True, pretrained=True),
  "resnet_ln_gem": _net(
    "resnet50", embed_dim=512, layer_norm=True, pooling="gem", freeze_batch_norm=True, pretrained=True
  ),
  "resnet_ln_max": _net(
    "resnet50", embed_dim=512, layer_norm=True, pooling="max", freeze_batch_norm=True, pretrained=True
  ),
  # The ROADMAP repository's roadmap/config/model/resnet.yaml: resnet_ln without its LayerNorm. (Its
  # resnet_max_ln.yaml is resnet_ln_max, and its deit.yaml, 'vit_deit_distilled', is deit_small.)
  "roadmap_repo_resnet": _net(
    "resnet50", embed_dim=512, layer_norm=False, pooling="avg", freeze_batch_norm=True, pretrained=True
  ),
  # DyML: ResNet-34 trained from scratch with batch norm (Vehicle, Animal), or from ImageNet weights
  # with frozen batch norm (Product).
  "dyml_resnet34": _net(
    "resnet34", embed_dim=512, layer_norm=True, pooling="avg", freeze_batch_norm=False, pretrained=False
  ),
  "dyml_resnet34_product": _net(
    "resnet34", embed_dim=512, layer_norm=True, pooling="avg", freeze_batch_norm=True, pretrained=True
  ),
  # Transformers: the class token without projection (norm_features only for DeiT-B).
  "deit_small": _net("deit_small", embed_dim=0, layer_norm=False, pretrained=True),
  "deit_base": _net("deit_base", embed_dim=0, layer_norm=True, pretrained=True),
  "vit_base": _net("vit_base_patch16", embed_dim=0, layer_norm=False, pretrained=True),
  "vit_base_512proj": _net("vit_base_patch16", embed_dim=512, layer_norm=False, pretrained=True),
  # The landmark model: ResNet-101, GeM, L2, a 2048-d projection started from a learned whitening.
  "resnet_101_lm": _net(
    "resnet101", embed_dim=2048, layer_norm=False, pooling="gem", freeze_batch_norm=True, pretrained=True, whiten=True
  ),
}
