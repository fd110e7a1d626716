"""PyTorch glue for :mod:`lrscope.landscape`: a ``LossFunction`` over a ``torch.nn.Module``.

``torch_loss_function(model, loss_fn, batch)`` returns an object with ``params`` (NumPy copies
of the model's parameters, by ``named_parameters()`` name) and ``loss_at(params)``, which loads
``params`` into the model, computes ``loss_fn(model(inputs), targets)`` without gradients, and
puts everything back: parameters and buffers (BatchNorm running statistics change in a
train-mode forward) are restored bitwise after every call, and the RNG is forked so dropout
draws do not advance the user's generator. PyTorch is imported here only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lrscope.errors import invalid, require


class TorchLossFunction:
    """A :class:`lrscope.landscape.LossFunction` over a torch model (see module docstring)."""

    def __init__(
        self, model: Any, loss_fn: Callable[[Any, Any], Any], batch: Sequence[Any]
    ) -> None:
        torch: Any = require("torch", "lrscope.adapters.torch_landscape", "torch")
        if not isinstance(model, torch.nn.Module):
            raise invalid("model", "must be a torch.nn.Module", model=type(model).__name__)
        if not callable(loss_fn):
            raise invalid("loss_fn", "must be callable as loss_fn(output, target)", loss_fn=loss_fn)
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise invalid("batch", "must be an (inputs, targets) pair", batch=type(batch).__name__)
        self._torch = torch
        self.model = model
        self.loss_fn = loss_fn
        self.batch = tuple(batch)
        self._tensors = dict(model.named_parameters())
        self.params: dict[str, np.ndarray] = {
            name: _to_numpy(p) for name, p in self._tensors.items()
        }

    def loss_at(self, params: Mapping[str, np.ndarray]) -> float:
        """The loss with the parameters replaced by ``params``; the model is left exactly as
        it was (parameters, buffers, RNG)."""
        torch = self._torch
        missing = set(self._tensors) - set(params)
        if missing:
            raise invalid("params", "must hold every parameter", missing=sorted(missing))
        saved = {k: v.detach().clone() for k, v in self.model.state_dict(keep_vars=True).items()}
        devices = sorted({p.device.index or 0 for p in self._tensors.values() if p.is_cuda})
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                for name, tensor in self._tensors.items():
                    value = torch.as_tensor(np.asarray(params[name]))
                    tensor.copy_(value.to(device=tensor.device, dtype=tensor.dtype))
                inputs, targets = self.batch
                loss = self.loss_fn(self.model(inputs), targets)
                return float(loss.detach().double().cpu().item())
        finally:
            with torch.no_grad():
                for name, tensor in self.model.state_dict(keep_vars=True).items():
                    tensor.copy_(saved[name])


def _to_numpy(tensor: Any) -> np.ndarray:
    value = tensor.detach().cpu()
    if value.is_floating_point() and str(value.dtype) not in (
        "torch.float16",
        "torch.float32",
        "torch.float64",
    ):
        value = value.float()  # bfloat16 and the float8s have no NumPy dtype
    return np.array(value.numpy(), copy=True)


def torch_loss_function(
    model: Any, loss_fn: Callable[[Any, Any], Any], batch: Sequence[Any]
) -> TorchLossFunction:
    """Build the landscape interface for ``model`` on one fixed ``(inputs, targets)`` batch.

    >>> surface = torch_loss_function(model, torch.nn.functional.mse_loss, (x, y))  # doctest: +SKIP
    >>> random_slice(surface, points=21).to_html("landscape.html")  # doctest: +SKIP
    """
    return TorchLossFunction(model, loss_fn, batch)
