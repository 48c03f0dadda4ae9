"""Cross-batch memory groups: the original's ``suprank/config/memory/*.yaml`` as ``config.xbm``.

Every original memory starts at epoch 5 with both factors 1 (``(f_t * batch + f * memory) / (f_t + f)``).
"""

from __future__ import annotations

__all__ = ["GROUPS"]


def _memory(size: int):
  def group(config):
    config.xbm.size = size
    config.xbm.activate_epoch = 5
    config.xbm.factor = 1.0
    config.xbm.factor_true_loss = 1.0

  group.__doc__ = (
    "no cross-batch memory"
    if size == 0
    else ("a memory of the whole training set" if size < 0 else f"a memory of {size} embeddings")
  )
  return group


GROUPS = {
  "no_memory": _memory(0),
  "full_memory": _memory(-1),  # ${dataset.num_samples_train}: -1 = the size of the training split
  "inat_memory": _memory(60000),
  "small_memory": _memory(512),
}
