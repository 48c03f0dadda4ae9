"""Named config groups, the counterparts of the original's ``suprank/config/{dataset,model,optimizer,loss,
memory}/*.yaml``: each is a function that sets its part of a config. ``configs/experiment.py``
composes them (``experiment.py:dataset=sop,model=resnet_ln,optimizer=sop,loss=happier_sop``).

A name is a SupRank file's name, lower-cased; ``roadmap_repo_<name>`` is the ROADMAP repository's
``roadmap/config/<kind>/<name>.yaml`` (its README's runs, ``configs/roadmap``) where no SupRank group holds
its values (``roadmap_repo_sop_big``: its ``dataset=sop`` with ``transform=sop_big``)."""

from suprank_jax.configs.groups import dataset, loss, memory, model, optimizer

# kind -> {group name: function(config)}; names are the original's file names, lower-cased.
GROUPS = {
  "dataset": dataset.GROUPS,
  "model": model.GROUPS,
  "optimizer": optimizer.GROUPS,
  "loss": loss.GROUPS,
  "memory": memory.GROUPS,
}

__all__ = ["GROUPS"]
