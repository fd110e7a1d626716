"""A TARGET for ``lrscope find`` / ``lrscope sweep``: the lesson's NumPy linear regression.

    lrscope find examples/lesson_target.py:trainer --start-lr 1e-4 --end-lr 10
    lrscope sweep examples/lesson_target.py:trainer --lrs 0.01:1:9 --steps 200 --eval-every 1

A target is any function returning a Trainer (``run(lrs)``, ``snapshot()``, ``restore(state)``);
taking a ``seed`` keyword lets ``--seeds N`` repeat each run with seeds 0..N-1. The adapters'
``trainer(...)`` helpers (torch, Keras, JAX) build one from a model, an optimizer and data.
"""

from __future__ import annotations

from lrscope.lab.linreg import linreg_trainer, make_data, mse


def trainer(seed: int = 0):
    """Full-batch float32 GD on the lesson's data (data drawn with ``seed``), with
    ``evaluate()`` = the loss after the steps taken (no held-out split: this is the lesson)."""
    data = make_data(seed=seed)
    model = linreg_trainer(data)
    model.evaluate = lambda: float(mse(model.state["w"], model.state["b"], data.x, data.y))
    return model
