"""The trainer: ``train.train_and_evaluate(config, workdir)`` and what it is made of.

* ``train``: the run (set-up, the loop, evaluations, saves, clean stops) and its summary table.
* ``train_state``: the state pytree and the jitted step.
* ``preflight``: every check before any work, and what the run needs (``Prepared``).
* ``checkpoint``: verified orbax checkpoints; ``resume_rules``: what a resume may change;
  ``workdir_lock``: one run per workdir.
* ``main``: the command line (``python -m suprank_jax.train``).
"""
