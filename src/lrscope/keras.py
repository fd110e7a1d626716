"""lrscope for Keras 3 (TensorFlow, JAX or torch backend): ``find_lr``, ``trainer``,
``KerasTrainer`` and the ``LRRangeTest`` fit callback.

>>> import lrscope.keras                                          # doctest: +SKIP
>>> result = lrscope.keras.find_lr(model, x, y, batch_size=64)    # doctest: +SKIP
>>> result.suggest().lr                                           # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from lrscope.adapters.keras import KerasTrainer, find_lr, trainer

__all__ = ["KerasTrainer", "LRRangeTest", "find_lr", "trainer"]  # noqa: F822 (LRRangeTest: lazy)


def __getattr__(name: str) -> Any:
    # The callback subclasses keras.callbacks.Callback: built on first access.
    if name == "LRRangeTest":
        from lrscope.adapters import keras as adapter

        return adapter.LRRangeTest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
