"""Named config groups, the counterparts of the original's ``suprank/config/{dataset,model,optimizer,loss,
memory}/*.yaml``: each is a function that sets its part of a config. ``configs/experiment.py``
composes them (``experiment.py:dataset=sop,model=resnet_ln,optimizer=sop,loss=happier_sop``)."""

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
