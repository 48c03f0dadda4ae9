"""Optimizer groups: the original's ``suprank/config/optimizer/*.yaml`` as ``config.optim``.

The original builds one torch optimizer per key of ``optimizer.opt``: ``backbone`` (the network's
backbone) and ``head`` (pooling, LayerNorm, projection), or ``net`` (the whole network), each with a
scheduler stepped once per epoch (``schedule_per_epoch``). Here the base optimizer is the
backbone's (or the net's) and the head is a parameter group ``^model/head/`` with its learning-rate
multiplier (``${mult:2, backbone.lr}`` -> 2) and the same weight decay and schedule floor
(``eta_min`` is absolute in torch, so it is not multiplied). Loss parameters get their optimizer
from the loss group (``loss.py``).

``roadmap_repo_<name>`` is the ROADMAP repository's ``roadmap/config/optimizer/<name>.yaml`` (the runs
of its README): a list of torch optimizers, one per ``params`` key (``backbone`` and ``fc`` at the same
rate: head x1) or one over every parameter (``params:`` empty), each with a ``MultiStepLR`` stepped
per epoch or no scheduler (a constant rate). Its ``sop_deit.yaml`` is SupRank's ``sop_deit_sch``. The
stored copy of that repository holds ``cub_deit.yaml`` at that path, and ``sop``, ``cub`` and
``inaturalist`` only under its package's earlier names (``margin_ap/config/optimizer/``,
``marginap/config/optimizer/``).
"""

from __future__ import annotations

__all__ = ["GROUPS", "HEAD_REGEX"]

HEAD_REGEX = "^model/head/"


def _group(
  name: str,
  learning_rate: float,
  weight_decay: float,
  *,
  head: float | None = 2.0,
  schedule: str = "cosine",
  min_learning_rate: float = 0.0,
  milestones: tuple[int, ...] = (),
  gamma: float = 0.1,
  momentum: float = 0.9,
  nesterov: bool = False,
):
  """An optimizer group: ``head=None`` for a single ``net`` optimizer, else the head's lr multiplier."""

  def group(config):
    o = config.optim
    o.name = name
    o.learning_rate = learning_rate
    o.weight_decay = weight_decay
    if name == "sgd":
      o.momentum = momentum
      o.nesterov = nesterov
    o.schedule = schedule
    o.schedule_per_epoch = True
    if schedule == "cosine":
      o.min_learning_rate = min_learning_rate
    if schedule == "steps":
      o.decay_epochs = tuple(milestones)
      o.decay_factor = gamma
    o.groups = () if head is None else ((HEAD_REGEX, head),)

  parts = "net" if head is None else f"backbone, head x{head:g}"
  group.__doc__ = f"{name} lr {learning_rate:g} wd {weight_decay:g} ({parts}), {schedule} schedule per epoch"
  return group


GROUPS = {
  "sop": _group("adam", 5e-5, 1e-4),
  # sop_deit.yaml: AdamW 1e-5, wd 5e-4, cosine to 0 over the whole net (as inat_deit.yaml); the stored
  # copy of the repository does not hold this file.
  "sop_deit": _group("adamw", 1e-5, 5e-4, head=None),
  "sop_deit_sch": _group("adamw", 1e-5, 5e-4, head=None, schedule="steps", milestones=(25, 50), gamma=0.3),
  "cub": _group("adam", 1e-6, 4e-4),
  "cub_deit": _group("adamw", 1e-6, 5e-4, head=None),
  "cub_pcapp": _group("adam", 1e-3, 0.0),
  "cub_vit_base_512proj": _group("adamw", 1e-6, 5e-4, min_learning_rate=1e-6),
  "cars": _group("adam", 1e-4, 4e-4),
  "inat": _group("adam", 1e-5, 4e-4, min_learning_rate=1e-6),
  "inat_deit": _group("adamw", 1e-5, 5e-4, head=None),
  "inat_deit_sch": _group("adamw", 1e-5, 5e-4, head=None, schedule="steps", milestones=(30, 70), gamma=0.3),
  "inat_vit_base_512proj": _group("adamw", 1e-5, 5e-4, min_learning_rate=1e-6),
  "inshop": _group("adam", 1e-5, 4e-4),
  "dyml": _group("sgd", 0.1, 1e-4, head=None, min_learning_rate=1e-6, nesterov=True),
  "dyml_product": _group("sgd", 0.01, 1e-4, min_learning_rate=1e-5, nesterov=True),
  "gldv2": _group("adam", 1e-4, 1e-4, head=1.0),
  "gldv2_bench": _group("adam", 1e-4, 1e-4, head=None, min_learning_rate=3e-6),
  # The ROADMAP repository's files (module docstring).
  "roadmap_repo_sop": _group("adam", 1e-5, 1e-4, head=1.0, schedule="steps", milestones=(25,), gamma=0.1),
  "roadmap_repo_cub": _group("adam", 1e-6, 4e-4, head=None, schedule="constant"),
  "roadmap_repo_cub_deit": _group("adamw", 1e-6, 5e-4, head=None, schedule="constant"),
  "roadmap_repo_inaturalist": _group("adam", 1e-5, 4e-4, head=1.0, schedule="steps", milestones=(30, 70), gamma=0.3),
}
