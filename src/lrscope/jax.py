"""lrscope for JAX / optax: ``lrscope.jax.find_lr(loss_fn, params, optimizer, batches)``.

A range test compiled once and run as jitted ``lax.scan`` chunks; see ``docs/jax.md``.
Importing this module imports JAX and optax (``import lrscope`` does not); without them it
raises ``MissingDependencyError``: ``pip install 'lrscope[jax]'``.
"""

from __future__ import annotations

from lrscope.adapters.jax import JaxTrainer, find_lr, trainer

__all__ = ["JaxTrainer", "find_lr", "trainer"]
