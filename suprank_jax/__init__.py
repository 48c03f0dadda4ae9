"""suprank_jax: differentiable rank losses for image retrieval in JAX/Flax."""

__version__ = "0.1.0"
