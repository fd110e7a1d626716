"""lrscope for PyTorch: ``find_lr(model, optimizer, loss_fn, train_loader)`` in one call.

Importing this module imports PyTorch (``import lrscope`` alone does not). See
:mod:`lrscope.adapters.torch` for what is restored and how batches become losses.

>>> import lrscope.torch  # doctest: +SKIP
>>> result = lrscope.torch.find_lr(model, optimizer, loss_fn, loader)  # doctest: +SKIP
>>> result.suggest().lr  # doctest: +SKIP
"""

from __future__ import annotations

from lrscope.adapters.torch import TorchTrainer, find_lr, trainer

__all__ = ["TorchTrainer", "find_lr", "trainer"]
