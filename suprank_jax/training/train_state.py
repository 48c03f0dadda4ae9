"""The train state and the jitted train step: ``train_step(state, batch, *, model, loss_fn, ...)``.

One pytree (:class:`TrainState`) holds everything a run needs to continue exactly; the step is a
module-level function bound with ``functools.partial`` and jit-compiled over the data-parallel mesh
(``train.py``), so that the losses see the whole global batch.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from suprank_jax.losses import combine, xbm
from suprank_jax.losses.inputs import batch_inputs
from suprank_jax.models import torch_weights

__all__ = [
  "TrainState",
  "create_state",
  "load_pretrained",
  "loss_and_grads",
  "train_step",
  "term_gradient_norms",
  "global_norm",
]


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue exactly: a single pytree, saved as one checkpoint."""

  step: jax.Array
  params: Any
  batch_stats: Any
  loss_params: Any
  opt_state: Any
  memory: Any  # xbm.XBMState, or {} without a cross-batch memory
  rng: jax.Array

  def trainable(self):
    return {"model": self.params, "loss": self.loss_params}

  def variables(self):
    """Model variables for ``model.apply``."""
    return {"params": self.params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}


def create_state(
  rng, *, model, tx, sample_images, losses_config, registry, num_classes_per_level, memory_size: int = 0
) -> TrainState:
  """A fresh state: model and loss parameters initialised from ``rng``, an empty memory of
  ``memory_size`` slots (none when 0)."""
  model_rng, loss_rng, state_rng = jax.random.split(rng, 3)
  variables = model.init(model_rng, sample_images, train=False)
  params = variables["params"]
  embed_dim = jax.eval_shape(lambda v: model.apply(v, sample_images, train=False), variables).shape[-1]
  loss_params = combine.init_loss_params(
    loss_rng, losses_config, registry, embed_dim=embed_dim, num_classes_per_level=num_classes_per_level
  )
  trainable = {"model": params, "loss": loss_params}
  memory = xbm.xbm_init(memory_size, embed_dim, len(num_classes_per_level)) if memory_size else {}
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    batch_stats=variables.get("batch_stats", {}),
    loss_params=loss_params,
    opt_state=tx.init(trainable),
    memory=memory,
    rng=state_rng,
  )


def load_pretrained(state: TrainState, model_config, tx) -> TrainState:
  """``state`` with the backbone of ``model_config.pretrained_path`` and a fresh optimizer state."""
  variables = torch_weights.load_pretrained(jax.device_get(state.variables()), model_config)
  state = state.replace(params=variables["params"], batch_stats=variables.get("batch_stats", state.batch_stats))
  return state.replace(opt_state=tx.init(state.trainable()))


def global_norm(tree):
  leaves = jax.tree.leaves(tree)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves)) if leaves else jnp.zeros(())


def _loss_and_terms(
  trainable, state: TrainState, batch, rng, *, model, loss_fn, memory_config, steps_per_epoch, loss_context
):
  """The weighted loss of ``trainable`` on ``batch``: ``(total, (terms, batch_stats, memory))``."""
  has_batch_stats = bool(state.batch_stats)
  variables = {"params": trainable["model"], **({"batch_stats": state.batch_stats} if has_batch_stats else {})}
  out = model.apply(
    variables, batch["images"], train=True, rngs={"dropout": rng}, mutable=["batch_stats"] if has_batch_stats else False
  )
  embeddings, new_vars = out if has_batch_stats else (out, {})
  memory, memory_kwargs = state.memory, {}
  if memory_config is not None:
    memory_inputs, memory = xbm.xbm_step(state.memory, embeddings, batch["labels"])
    memory_kwargs = dict(
      memory=memory_inputs,
      memory_factor=memory_config.factor,
      memory_factor_true_loss=memory_config.factor_true_loss,
      memory_active=xbm.xbm_active(state.step, steps_per_epoch=steps_per_epoch, activate=memory_config.activate_epoch),
    )
  total, terms = loss_fn(
    trainable["loss"],
    batch_inputs(embeddings, batch["labels"]),
    rng=jax.random.fold_in(rng, 1),
    context=loss_context,
    **memory_kwargs,
  )
  return total, (terms, new_vars.get("batch_stats", state.batch_stats), memory)


def loss_and_grads(
  state: TrainState, batch, *, model, loss_fn, memory_config=None, steps_per_epoch: int = 1, loss_context=None
):
  """The weighted loss of ``batch`` and its gradient with respect to ``state.trainable()``.

  Returns:
    ``((loss, (terms, batch_stats, memory)), grads)``: the loss, each loss term, the model's batch
    statistics and the cross-batch memory after the forward pass, and ``grads`` shaped like
    ``state.trainable()``. The arguments are :func:`train_step`'s.
  """
  rng = jax.random.fold_in(state.rng, state.step)
  loss_of = functools.partial(
    _loss_and_terms,
    state=state,
    batch=batch,
    rng=rng,
    model=model,
    loss_fn=loss_fn,
    memory_config=memory_config,
    steps_per_epoch=steps_per_epoch,
    loss_context=loss_context,
  )
  return jax.value_and_grad(loss_of, has_aux=True)(state.trainable())


def train_step(
  state: TrainState,
  batch,
  *,
  model,
  loss_fn,
  tx,
  schedules,
  memory_config=None,
  steps_per_epoch: int = 1,
  loss_context=None,
):
  """One optimisation step on a global batch.

  Args:
    state: the train state.
    batch: ``{"images": [B, H, W, C], "labels": [B, L] int32, ...}`` (global arrays).
    model: the Linen module.
    loss_fn: the weighted loss, ``combine.make_loss_fn(config.losses)``.
    tx: the optax transformation over ``state.trainable()``.
    schedules: ``{group: schedule}`` learning rates, for logging.
    memory_config: ``config.xbm`` when the state holds a cross-batch memory: the detached batch is
      enqueued first, then each reference-set loss mixes its batch and memory values once the
      epoch (counted from 1) reaches ``activate_epoch`` (the reference trainer's rule).
    steps_per_epoch: to turn the step into an epoch for the memory's activation: an int, or the run's
      ``steps.EpochPlan`` (epochs of varying length).
    loss_context: data-set constants for the losses (e.g. CSL's ``proxy_labels``).

  Returns:
    ``(new_state, metrics)``: scalars for the loss, each loss term, the L2 norms of the gradients,
    parameters and updates, and the learning rate of each group.
  """
  (loss, (terms, batch_stats, memory)), grads = loss_and_grads(
    state,
    batch,
    model=model,
    loss_fn=loss_fn,
    memory_config=memory_config,
    steps_per_epoch=steps_per_epoch,
    loss_context=loss_context,
  )
  trainable = state.trainable()
  updates, opt_state = tx.update(grads, state.opt_state, trainable)
  trainable = optax.apply_updates(trainable, updates)
  metrics = {
    "loss": loss,
    **{f"loss/{k}": v for k, v in terms.items()},
    "l2_grads": global_norm(grads),
    "l2_params": global_norm(trainable["model"]),
    "l2_updates": global_norm(updates),
    **{f"lr/{k}": s(state.step) for k, s in schedules.items()},
  }
  new_state = state.replace(
    step=state.step + 1,
    params=trainable["model"],
    loss_params=trainable["loss"],
    batch_stats=batch_stats,
    opt_state=opt_state,
    memory=memory,
  )
  return new_state, metrics


def term_gradient_norms(state: TrainState, batch, *, losses_config, registry, **loss_kwargs) -> dict[str, float]:
  """The L2 norm of the gradient of each loss term alone, for the message of a non-finite gradient:
  which term's gradient is NaN or inf. Each term is differentiated on its own (a NaN in one term's
  backward pass would reach the others' through their shared forward pass). ``loss_kwargs``: those of
  :func:`train_step` but ``loss_fn``, ``tx`` and ``schedules``."""
  rng = jax.random.fold_in(state.rng, state.step)
  norms = {}
  for entry, *_ in combine.entries(losses_config, registry):
    alone = ml_collections.ConfigDict({entry: losses_config[entry]})
    loss_of = functools.partial(
      _loss_and_terms, state=state, batch=batch, rng=rng, loss_fn=combine.make_loss_fn(alone, registry), **loss_kwargs
    )
    grads = jax.jit(jax.grad(lambda t, f=loss_of: f(t)[0]))(state.trainable())
    norms[entry] = float(global_norm(grads))
  return norms
