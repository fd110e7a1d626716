"""lrscope: find a learning rate you can trust for the number of steps you can afford.

Framework adapters live in submodules imported on demand (``lrscope.torch``, ``lrscope.keras``,
``lrscope.jax``); importing ``lrscope`` loads no framework and no plotting library.
"""

from __future__ import annotations

__version__ = "0.1.0"

from lrscope.adapters.stepfn import FunctionTrainer, find_lr
from lrscope.core.ramp import lr_ramp
from lrscope.core.rangetest import range_test
from lrscope.core.result import RangeTestResult
from lrscope.core.rules import RULES, Suggestion
from lrscope.core.smoothing import smooth_loss
from lrscope.core.sweep import SweepResult
from lrscope.core.trainer import Trainer
from lrscope.core.verify import VerifyResult, verify
from lrscope.errors import (
    DivergenceError,
    InvalidParameterError,
    LRScopeError,
    MissingDependencyError,
    ResultFormatError,
    TrainerError,
)
from lrscope.lab.lesson import LessonResult, run_lesson
from lrscope.sweeping import sweep

__all__ = [
    "RULES",
    "DivergenceError",
    "FunctionTrainer",
    "InvalidParameterError",
    "LRScopeError",
    "LessonResult",
    "MissingDependencyError",
    "RangeTestResult",
    "ResultFormatError",
    "Suggestion",
    "SweepResult",
    "Trainer",
    "TrainerError",
    "VerifyResult",
    "__version__",
    "find_lr",
    "lr_ramp",
    "range_test",
    "run_lesson",
    "smooth_loss",
    "sweep",
    "verify",
]
