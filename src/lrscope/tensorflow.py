"""lrscope for TensorFlow custom loops (``GradientTape`` steps): ``find_lr``, ``trainer``.

For Keras models use :mod:`lrscope.keras`.

>>> import lrscope.tensorflow                                           # doctest: +SKIP
>>> result = lrscope.tensorflow.find_lr(train_step, [w, b], steps=100)  # doctest: +SKIP
"""

from __future__ import annotations

from lrscope.adapters.tf import TFStepTrainer, find_lr, trainer

__all__ = ["TFStepTrainer", "find_lr", "trainer"]
