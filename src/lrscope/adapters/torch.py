"""The PyTorch adapter: an LR range test on (model, optimizer, loss_fn, train_loader).

``find_lr`` is the one call; ``TorchTrainer`` is the :class:`~lrscope.Trainer` behind it (for
the CLI, sweeps and ``lrscope.testing.check_trainer``). What a step changes, and therefore what
``snapshot`` copies to the host and ``restore`` puts back bit for bit:

- the model's ``state_dict`` (parameters and buffers, BatchNorm statistics included), the
  parameters' ``.grad``, and the train/eval flag of every submodule;
- the optimizer's per-parameter state (momentum, Adam moments, step counters) and every
  param-group hyperparameter (the LRs the ramp overwrites included), restored in place so the
  user's references to ``optimizer.param_groups`` and state tensors stay valid;
- the GradScaler (scale, growth tracker);
- the global RNGs: torch CPU, CUDA (when CUDA is initialised), NumPy's global and Python's
  ``random``; and the ``torch.Generator`` a DataLoader or its sampler owns;
- the data position (see :class:`TorchTrainer`).

The snapshot lives in host memory only; restoring copies it back into the existing tensors,
so the accelerator never holds a second copy of the model or the optimizer.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from lrscope.adapters import numpy_rng
from lrscope.core.rangetest import QuietBound, auto_chunk, range_test
from lrscope.core.result import RangeTestResult
from lrscope.errors import TrainerError, invalid, require, wrong_call

torch: Any = require("torch", "lrscope.torch", "torch")

_CPU = torch.device("cpu")
_END = object()  # what next(iterator, _END) returns at the end of a pass
#: Immutable values that ``copy.deepcopy`` returns as they are; copying them is skipped.
_ATOMIC = frozenset({int, float, bool, str, bytes, complex, type(None)})


class _HostTensor(NamedTuple):
    """A host copy of a tensor and the device it came from (restore puts it back there)."""

    tensor: Any
    device: str


def _to_host(value: Any) -> Any:
    """Deep host copy: tensors become CPU clones tagged with their device; the rest deepcopy."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is torch.Tensor and value.is_cpu and not value.requires_grad:
        # The usual case (state_dict() values, gradients on the CPU): the same copy as below
        # (strides, dtype, bits) without the detach and the device's name.
        return _HostTensor(value.clone(), "cpu")
    if isinstance(value, torch.Tensor):
        return _HostTensor(value.detach().to(_CPU, copy=True), str(value.device))
    if isinstance(value, Mapping):
        return {key: _to_host(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and not isinstance(value, _HostTensor):
        items = [_to_host(item) for item in value]
        return type(value)(items) if isinstance(value, list) else tuple(items)
    return copy.deepcopy(value)


def _from_host(value: Any) -> Any:
    """Inverse of :func:`_to_host` for values that cannot be copied into an existing tensor."""
    if type(value) in _ATOMIC:
        return value
    if isinstance(value, _HostTensor):
        return value.tensor.to(value.device, copy=True)
    if isinstance(value, Mapping):
        return {key: _from_host(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_host(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_from_host(item) for item in value)
    return copy.deepcopy(value)


def _restore_value(current: Any, saved: Any) -> Any:
    """Copy ``saved`` into ``current`` in place when both are same-shaped tensors (keeps the
    user's references valid, no extra device memory); otherwise return a fresh value. The
    caller runs it under ``torch.no_grad()`` (one context for a whole restore: entering one
    costs more than a small copy)."""
    if (
        isinstance(saved, _HostTensor)
        and isinstance(current, torch.Tensor)
        and current.shape == saved.tensor.shape
        and current.dtype == saved.tensor.dtype
        and (current.is_cpu if saved.device == "cpu" else str(current.device) == saved.device)
    ):
        current.copy_(saved.tensor)
        return current
    return _from_host(saved)


def _loader_generators(loader: Any) -> list[Any]:
    """The torch.Generators a DataLoader and its samplers own (shuffling advances them)."""
    found: list[Any] = []
    candidates = [
        getattr(loader, "generator", None),
        getattr(getattr(loader, "sampler", None), "generator", None),
        getattr(
            getattr(getattr(loader, "batch_sampler", None), "sampler", None), "generator", None
        ),
    ]
    for gen in candidates:
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def _global_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        # The legacy global NumPy RNG is user state too (np.random.* in datasets, augmentations).
        "numpy": numpy_rng.snapshot(),
        "python": random.getstate(),
    }
    # Only when CUDA is in use: querying it would otherwise initialise CUDA as a side effect.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_global_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_rng.restore(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _host_floats(losses: list[Any]) -> list[float]:
    """The scalar loss tensors of a chunk as Python floats (they hold every float32/16 value
    exactly): on an accelerator after one device->host transfer for the whole chunk, on the
    CPU read one by one."""
    if not losses:
        return []
    if losses[0].is_cpu:
        # Nothing to transfer: read each value where it is. Stacking allocates a tensor per
        # chunk, and measured between a small model's steps it cost more than these reads.
        return [loss.item() for loss in losses]
    try:
        stacked = torch.stack(losses)
    except RuntimeError:  # scalar losses of mixed shapes: (), (1,), (1, 1)
        stacked = torch.stack([loss.reshape(()) for loss in losses])
    return stacked.reshape(-1).tolist()


def _step_needs_closure(optimizer: Any) -> bool:
    """Whether ``optimizer.step`` has a ``closure`` parameter without a default (LBFGS):
    called without one, it fails inside the first step with a bare TypeError."""
    try:
        closure = inspect.signature(optimizer.step).parameters.get("closure")
    except (TypeError, ValueError):  # no signature to read: let the step decide
        return False
    return closure is not None and closure.default is inspect.Parameter.empty


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise invalid(name, "must be an integer >= 1", **{name: value})
    return int(value)


class TorchTrainer:
    """A :class:`~lrscope.Trainer` for a PyTorch model, optimizer, loss and data loader.

    One step at LR ``lr``: every param group's LR is set to ``lr * base_i / base_0`` (the
    ratios between the groups' LRs at construction are kept; the ramp is the LR of the first
    group), gradients are zeroed, ``accumulation_steps`` batches are drawn, their losses
    (divided by ``accumulation_steps``) back-propagated, and the optimizer steps once (through
    ``scaler`` when given). The step's loss is the mean of its micro-batch losses. Losses stay
    on the device during a chunk and reach the host in one transfer per ``run``.

    How a batch becomes a loss:

    - ``batch_fn(batch) -> loss`` when given (full control; ``loss_fn`` may be None);
    - a tuple/list ``(x1, ..., xk, y)``: ``loss_fn(model(x1, ..., xk), y)``;
    - a dict: ``loss_fn(model(**inputs), batch[target_key])`` with ``inputs`` the other keys;
      with ``loss_fn=None``, ``model(**batch)`` must return the loss, or an object or dict
      with a ``loss`` entry (Hugging Face style).

    Tensors in the batch are moved to ``device`` (default: the device of the model's first
    parameter); the model is never moved. With ``autocast_dtype`` the forward pass and the loss
    run under ``torch.autocast(device.type, dtype=autocast_dtype)``.

    Data position: the trainer iterates its own ``iter(train_loader)`` and starts a new pass
    when one ends (a loader shorter than the test is cycled). ``snapshot`` records the pass
    (the RNG states when it began) and how many batches it has delivered; ``restore``
    rebuilds that iterator by replaying the pass from those RNG states and skipping the
    delivered batches, so replaying a chunk after a restore sees the same batches. The user's
    loader object is only ever iterated through ``iter()``; the generators it owns are
    restored. (A DataLoader with ``persistent_workers=True`` shares one iterator between all
    ``iter()`` calls, so an epoch the user has half-iterated would restart: call the test
    between epochs.) One-shot iterators (generators) are refused: they cannot be cycled or
    replayed.
    """

    #: run_chunks takes the range test's QuietBound: on the CPU the plain loop holds quiet
    #: chunks back (lrscope.core.rangetest.QuietBound)
    holds_quiet_chunks = True

    def __init__(
        self,
        model: Any,
        optimizer: Any,
        loss_fn: Callable[..., Any] | None,
        train_loader: Iterable[Any],
        *,
        val_loader: Iterable[Any] | None = None,
        val_batches: int = 4,
        accumulation_steps: int = 1,
        scaler: Any = None,
        autocast_dtype: Any = None,
        device: Any = None,
        batch_fn: Callable[[Any], Any] | None = None,
        target_key: str = "labels",
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"Argument `model` must be a torch.nn.Module. Received: model={type(model)!r}"
            )
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                "Argument `optimizer` must be a torch.optim.Optimizer. "
                f"Received: optimizer={type(optimizer)!r}"
            )
        # One walk over the module tree (each .parameters() call is one), shared below.
        model_params = list(model.parameters())
        if not any(p.requires_grad and p.numel() for p in model_params):
            raise invalid(
                "model",
                "must have at least one trainable parameter (requires_grad=True)",
                trainable_parameters=0,
            )
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if not any(p.requires_grad for p in params):
            raise invalid(
                "optimizer",
                "must hold at least one trainable parameter (requires_grad=True)",
                trainable_parameters=0,
            )
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(
                f"Argument `loss_fn` must be callable or None. Received: loss_fn={loss_fn!r}"
            )
        if batch_fn is not None and not callable(batch_fn):
            raise TypeError(
                f"Argument `batch_fn` must be callable or None. Received: batch_fn={batch_fn!r}"
            )
        self._check_loader("train_loader", train_loader)
        if val_loader is not None:
            self._check_loader("val_loader", val_loader)
        if scaler is not None and not all(
            callable(getattr(scaler, name, None))
            for name in ("scale", "step", "update", "state_dict", "load_state_dict")
        ):
            raise TypeError(
                "Argument `scaler` must be a torch.amp.GradScaler or None. "
                f"Received: scaler={scaler!r}"
            )
        if autocast_dtype is not None and not isinstance(autocast_dtype, torch.dtype):
            raise invalid(
                "autocast_dtype",
                "must be None or a torch.dtype such as torch.bfloat16",
                autocast_dtype=autocast_dtype,
            )
        base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        if not base_lrs[0] > 0:
            raise invalid(
                "optimizer",
                "must have a positive LR in its first param group (the ramp keeps the groups' "
                "LR ratios relative to it)",
                lr=base_lrs[0],
            )

        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.batch_fn = batch_fn
        self.target_key = target_key
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.val_batches = _positive_int("val_batches", val_batches)
        self.accumulation_steps = _positive_int("accumulation_steps", accumulation_steps)
        self.scaler = scaler
        self.autocast_dtype = autocast_dtype
        self.device = torch.device(device) if device is not None else model_params[0].device
        self.base_lrs = base_lrs
        self.lr_ratios = [lr / base_lrs[0] for lr in base_lrs]
        self._params = params
        in_model = {id(p) for p in model_params}
        # Parameters the optimizer updates that the model does not own (a learnable
        # temperature in the loss, ...) change too, so they are snapshotted as well.
        self._extra_params = [p for p in params if id(p) not in in_model]
        self._val_cache: list[Any] | None = None
        self._iterator: Iterator[Any] | None = None
        self._pass_rng: dict[str, Any] | None = None
        self._pass_id: int | None = None
        self._consumed = 0
        self._pass_ids = itertools.count()
        # Whether each new pass over train_loader records the RNG states it began with (what
        # restoring a snapshot taken in the middle of that pass replays it from). find_lr
        # turns it off: its only snapshot is taken before the first batch, so it never
        # replays, and the states cost ~40 us per pass (NumPy's alone ~30 us).
        self._replayable = True
        # Tests set this to compare the general step loop with the plain one, bit for bit.
        self._general_only = False

    @staticmethod
    def _check_loader(name: str, loader: Any) -> None:
        if not isinstance(loader, Iterable):
            raise TypeError(
                f"Argument `{name}` must be an iterable of batches (a DataLoader, a list). "
                f"Received: {name}={type(loader)!r}"
            )
        # Not `iter(loader) is loader`: iter() on a DataLoader draws a seed from the global RNG.
        if isinstance(loader, Iterator):
            raise invalid(
                name,
                "must be re-iterable (a DataLoader or a list of batches), not a one-shot "
                "iterator: the test cycles it and replays it after a restore",
                **{name: type(loader)},
            )
        try:
            empty = len(loader) == 0  # type: ignore[arg-type]
        except TypeError:  # no __len__ (an IterableDataset's loader): found out at the first step
            empty = False
        if empty:
            raise invalid(name, "must yield at least one batch", **{f"len({name})": 0})

    # -- the Trainer protocol ---------------------------------------------------------------
    def run(self, lrs: np.ndarray) -> np.ndarray:
        """Take ``len(lrs)`` optimizer steps, step ``i`` at ``lrs[i]`` (first group's LR);
        return the losses, float64, shape ``(len(lrs),)``, after one device->host transfer
        (on the CPU, read one by one)."""
        values = np.asarray(lrs, dtype=np.float64).reshape(-1).tolist()
        losses: list[float] = []
        if values:
            self._steps(values, len(values), losses.extend)
        return np.array(losses, dtype=np.float64)

    def run_chunks(
        self,
        lrs: np.ndarray,
        chunk: int,
        on_chunk: Callable[[list[float]], bool],
        quiet: QuietBound | None = None,
    ) -> None:
        """:meth:`run` over ``lrs`` in chunks of ``chunk`` steps, handing each chunk's losses
        (Python floats; on an accelerator one device->host transfer per chunk) to
        ``on_chunk``; stops after the chunk for which it returns True.

        The same steps and losses as calling :meth:`run` once per chunk, without the round
        trips through NumPy arrays between chunks, and in one loop: the step loop hands each
        chunk over itself (docs/design.md, "Who drives the chunks"). With ``quiet`` (the range
        test's :class:`~lrscope.core.rangetest.QuietBound`), the plain loop on the CPU reads
        each loss as it comes and holds back chunks whose losses are all inside the bound."""
        values = np.asarray(lrs, dtype=np.float64).reshape(-1).tolist()
        if values:
            self._steps(values, chunk, on_chunk, quiet)

    def _steps(
        self,
        lrs: list[float],
        chunk: int,
        on_chunk: Callable[[list[float]], Any],
        quiet: QuietBound | None = None,
    ) -> None:
        """The step loop; a TypeError from a callable of the wrong shape becomes one line."""
        try:
            self._step_loop()(lrs, chunk, on_chunk, quiet)
        except TypeError:
            # Diagnosed only when a step failed (reading signatures before every test would
            # add to its fixed cost); the range test restores everything as for any error.
            error = self._call_error()
            if error is not None:
                raise error from None
            raise

    def _call_error(self) -> Exception | None:
        """The one-line error for an optimizer, loss_fn or batch_fn that cannot be called as
        the step calls it (Python's own TypeError names none of them), or None."""
        if _step_needs_closure(self.optimizer):
            return invalid(
                "optimizer",
                "must be able to step without a closure: the range test takes one plain "
                "optimizer.step() per batch (LBFGS and other closure-driven optimizers "
                "evaluate the loss several times per step)",
                optimizer=type(self.optimizer).__name__,
            )
        for name, fn, count, form in (
            ("loss_fn", self.loss_fn, 2, "loss_fn(output, target) -> loss"),
            ("batch_fn", self.batch_fn, 1, "batch_fn(batch) -> loss"),
        ):
            error = (
                None if fn is None else wrong_call(name, fn, count, f"must be callable as {form}")
            )
            if error is not None:
                return error
        return None

    def _step_loop(
        self,
    ) -> Callable[[list[float], int, Callable[[list[float]], Any], QuietBound | None], None]:
        """The loop that takes the steps: ``loop(lrs, chunk, on_chunk, quiet)`` steps at each
        LR of ``lrs`` and calls ``on_chunk(floats)`` after every ``chunk`` steps (or, with
        ``quiet``, every chunk it does not hold back) and after the last, stopping when it
        returns a true value."""
        # Without a scaler, autocast, accumulation or batch_fn a step is the plain PyTorch
        # step; its own loop (chosen once per call, not per step) keeps lrscope's cost per step
        # to a few attribute lookups. Both loops run the same operations in the same order.
        plain = (
            self.scaler is None
            and self.autocast_dtype is None
            and self.accumulation_steps == 1
            and self.batch_fn is None
            and self.loss_fn is not None
            and not self._general_only
        )
        return self._run_plain if plain else self._run_general

    def _set_lr(self, lr: float) -> None:
        for group, ratio in zip(self.optimizer.param_groups, self.lr_ratios, strict=True):
            value = lr * ratio
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(value)
            else:
                group["lr"] = value

    def _run_plain(
        self,
        lrs: list[float],
        chunk: int,
        on_chunk: Callable[[list[float]], Any],
        quiet: QuietBound | None = None,
    ) -> None:
        """The steps of :meth:`run_chunks` for ``(inputs..., target)`` batches through
        ``loss_fn``; other batches go through :meth:`_loss`, as in :meth:`_run_general`.

        The same operations as :meth:`_run_general` with less Python around them (measured:
        what runs between two steps costs several times its microbenchmark in a training
        loop): the usual (x, y) batch of tensors already on the device skips the batch walk,
        the data iterator is advanced inline, the loss is checked in full only when it is not
        a tensor or backward() refuses it, and the chunks are handed over from inside the one
        loop. On the CPU with ``quiet``, each loss is read as it comes (a CPU tensor needs no
        transfer) and quiet chunks are held back."""
        model, loss_fn, tensor, device = self.model, self.loss_fn, torch.Tensor, self.device
        assert loss_fn is not None  # for type checkers; run() chose this loop because of it
        on_cpu = device.type == "cpu"
        optimizer = self.optimizer
        zero_grad, optimizer_step = optimizer.zero_grad, optimizer.step
        to_device, end = self._to_device, _END
        groups = optimizer.param_groups
        # The usual single group at ratio 1: lr * 1.0 == lr, so setting lr itself is the same.
        single = len(groups) == 1 and self.lr_ratios == [1.0]
        group0 = groups[0]
        losses: list[Any] = []
        append = losses.append
        left = chunk
        hold = quiet is not None and on_cpu
        low, high = (quiet.low, quiet.high) if quiet is not None else (0.0, 0.0)
        loud = False  # a loss of the chunks held back was outside [low, high]
        handing = False  # inside on_chunk (what Ctrl-C there interrupted has been handed over)
        if not model.training:
            # The test trains; restore() puts back every submodule's flag afterwards.
            model.train()
        try:
            for lr in lrs:
                if single and type(group0["lr"]) is float:
                    group0["lr"] = lr
                else:
                    self._set_lr(lr)
                zero_grad(set_to_none=True)
                # _next_batch() without the device move, inline
                iterator = self._iterator
                batch = end if iterator is None else next(iterator, end)
                if batch is end:
                    batch = self._next_raw() if iterator is None else self._next_pass()
                else:
                    self._consumed += 1
                kind = type(batch)
                if (kind is tuple or kind is list) and len(batch) == 2:
                    x, y = batch
                    # x.is_cpu is cheaper than building x.device to compare it
                    if type(x) is not tensor or not (x.is_cpu if on_cpu else x.device == device):
                        x = to_device(x)
                    if type(y) is not tensor or not (y.is_cpu if on_cpu else y.device == device):
                        y = to_device(y)
                    loss = loss_fn(model(x), y)
                elif (kind is tuple or kind is list) and len(batch) > 2:
                    batch = to_device(batch)
                    loss = loss_fn(model(*batch[:-1]), batch[-1])
                else:  # dicts, namedtuples and mistakes: the general rules and errors
                    loss = self._loss(to_device(batch), training=True)
                if type(loss) is not tensor:
                    self._check_loss(loss, "loss_fn", training=True)
                try:
                    loss.backward()
                except RuntimeError:
                    # A loss with several elements or without a gradient: say which, in one line.
                    error = self._loss_error(loss, "loss_fn", training=True)
                    if error is not None:
                        raise error from None
                    raise
                optimizer_step()
                if hold:
                    value = loss.item()  # (no detach needed: item() copies the value out)
                    append(value)
                    if not low <= value <= high:  # NaN too
                        loud = True
                else:
                    append(loss.detach())
                left -= 1
                if not left:
                    left = chunk
                    if hold and not loud:
                        continue
                    handing = True
                    if on_chunk(losses if hold else _host_floats(losses)):
                        return
                    handing = False
                    losses = []
                    append = losses.append
                    if quiet is not None:
                        loud, high = False, quiet.high
                    if not model.training:  # on_chunk may have evaluated
                        model.train()
        except KeyboardInterrupt:
            # Ctrl-C: the whole chunks held back are handed over first, so the partial result
            # is the one a chunk-by-chunk test would have recorded.
            held = len(losses) // chunk * chunk if hold and not handing else 0
            if held:
                on_chunk(losses[:held])
            raise
        if losses:
            on_chunk(losses if hold else _host_floats(losses))

    def _run_general(
        self,
        lrs: list[float],
        chunk: int,
        on_chunk: Callable[[list[float]], Any],
        quiet: QuietBound | None = None,
    ) -> None:
        """The steps of :meth:`run_chunks` with a scaler, autocast, accumulation or
        ``batch_fn``; every chunk is handed over (``quiet`` is not used)."""
        optimizer, scaler, accumulate = self.optimizer, self.scaler, self.accumulation_steps
        model = self.model
        for begin in range(0, len(lrs), chunk):
            if not model.training:  # the test trains (on_chunk may have evaluated)
                model.train()
            losses = []
            for lr in lrs[begin : begin + chunk]:
                self._set_lr(lr)
                optimizer.zero_grad(set_to_none=True)
                total = None
                for _ in range(accumulate):
                    loss = self._loss(self._next_batch(), training=True)
                    part = loss / accumulate if accumulate > 1 else loss
                    (scaler.scale(part) if scaler is not None else part).backward()
                    detached = loss.detach().reshape(())
                    total = detached if total is None else total + detached
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                losses.append(total / accumulate if accumulate > 1 else total)
            if on_chunk(_host_floats(losses)):
                return

    def snapshot(self) -> dict[str, Any]:
        """Host copy of everything a step changes (see the module docstring)."""
        if self._pass_id is not None and self._pass_rng is None:
            # Only find_lr's own trainer skips the pass records, and it snapshots before the
            # first batch; a snapshot here could not put the data position back.
            raise TrainerError(
                "snapshot() in the middle of a pass over train_loader needs the trainer to "
                "record its passes (TorchTrainer._replayable=True, the default)"
            )
        model_state = {
            name: _to_host(value) for name, value in self.model.state_dict(keep_vars=False).items()
        }
        grads = {
            name: None if p.grad is None else _to_host(p.grad)
            for name, p in self.model.named_parameters()
        }
        optimizer = self.optimizer
        state = {
            "model": model_state,
            "grads": grads,
            "extra_params": [(_to_host(p), _to_host(p.grad)) for p in self._extra_params],
            "modes": {name: module.training for name, module in self.model.named_modules()},
            "param_groups": [
                {key: _to_host(value) for key, value in group.items() if key != "params"}
                for group in optimizer.param_groups
            ],
            "optimizer_state": [
                _to_host(optimizer.state[p]) if p in optimizer.state else None for p in self._params
            ],
            "opt_called": getattr(optimizer, "_opt_called", None),
            "scaler": None if self.scaler is None else copy.deepcopy(self.scaler.state_dict()),
            "rng": _global_rng_state(),
            "loader_rng": [g.get_state() for g in _loader_generators(self.train_loader)],
            "data": {"pass": self._pass_id, "consumed": self._consumed, "rng": self._pass_rng},
        }
        return state

    def restore(self, state: Any) -> None:
        """Put back exactly the state of a :meth:`snapshot`, copying into existing tensors."""
        model = self.model
        with torch.no_grad():
            current = model.state_dict(keep_vars=False)
            extra: dict[str, Any] = {}
            for name, saved in state["model"].items():
                if isinstance(saved, _HostTensor) and name in current:
                    current[name].copy_(saved.tensor)
                else:
                    extra[name] = _from_host(saved)
            if extra:  # get_extra_state() entries and the like
                model.load_state_dict(extra, strict=False)
            for name, p in model.named_parameters():
                p.grad = (
                    None
                    if state["grads"][name] is None
                    else _restore_value(p.grad, state["grads"][name])
                )
            for p, (value, grad) in zip(self._extra_params, state["extra_params"], strict=True):
                p.copy_(value.tensor)
                p.grad = None if grad is None else _restore_value(p.grad, grad)
            self._restore_optimizer(state)
        for name, module in model.named_modules():
            module.training = state["modes"][name]
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
            # A step interrupted between scale() and update() leaves per-optimizer bookkeeping
            # ("already unscaled") that would make the user's next scaler.step() raise.
            per_optimizer = getattr(self.scaler, "_per_optimizer_states", None)
            if per_optimizer is not None:
                per_optimizer.clear()
        # Data first: rebuilding an iterator consumes RNG, which is put back right after.
        self._restore_data(state["data"])
        for gen, saved in zip(
            _loader_generators(self.train_loader), state["loader_rng"], strict=True
        ):
            gen.set_state(saved)
        _set_global_rng_state(state["rng"])

    def _restore_optimizer(self, state: Mapping[str, Any]) -> None:
        optimizer = self.optimizer
        for group, saved in zip(optimizer.param_groups, state["param_groups"], strict=True):
            for key in [k for k in group if k != "params" and k not in saved]:
                del group[key]
            for key, value in saved.items():
                group[key] = _restore_value(group.get(key), value)
        for p, saved in zip(self._params, state["optimizer_state"], strict=True):
            if saved is None:
                optimizer.state.pop(p, None)
                continue
            slots = optimizer.state[p]
            for key in [k for k in slots if k not in saved]:
                del slots[key]
            for key, value in saved.items():
                slots[key] = _restore_value(slots.get(key), value)
        if state["opt_called"] is None:
            optimizer.__dict__.pop("_opt_called", None)
        else:
            optimizer._opt_called = state["opt_called"]

    # -- data ---------------------------------------------------------------------------------
    def _start_pass(self) -> None:
        self._pass_rng = (
            {
                "global": _global_rng_state(),
                "loader": [g.get_state() for g in _loader_generators(self.train_loader)],
            }
            if self._replayable
            else None
        )
        self._iterator = iter(self.train_loader)
        self._pass_id = next(self._pass_ids)
        self._consumed = 0

    def _next_batch(self) -> Any:
        return self._to_device(self._next_raw())

    def _next_raw(self) -> Any:
        """The next batch as the loader yields it, starting a new pass when one ends."""
        if self._iterator is None:
            self._start_pass()
        assert self._iterator is not None  # for type checkers; set just above
        try:
            batch = next(self._iterator)
        except StopIteration:
            return self._next_pass()
        self._consumed += 1
        return batch

    def _next_pass(self) -> Any:
        """The current pass has ended: start the next one and return its first batch."""
        was_empty = self._consumed == 0
        self._start_pass()
        assert self._iterator is not None  # for type checkers; set just above
        try:
            batch = None if was_empty else next(self._iterator)
        except StopIteration:
            was_empty = True
        if was_empty:
            raise invalid(
                "train_loader", "must yield at least one batch", batches_yielded=0
            ) from None
        self._consumed += 1
        return batch

    def _restore_data(self, saved: Mapping[str, Any]) -> None:
        if saved["pass"] == self._pass_id and saved["consumed"] == self._consumed:
            return
        self.close()
        if saved["pass"] is None:
            return
        # Replay the pass from the RNG states it began with, then skip what it had delivered.
        _set_global_rng_state(saved["rng"]["global"])
        for gen, gen_state in zip(
            _loader_generators(self.train_loader), saved["rng"]["loader"], strict=True
        ):
            gen.set_state(gen_state)
        self._iterator = iter(self.train_loader)
        for _ in range(saved["consumed"]):
            next(self._iterator)
        self._pass_rng, self._pass_id, self._consumed = (
            saved["rng"],
            saved["pass"],
            saved["consumed"],
        )

    def close(self) -> None:
        """Drop the trainer's data iterator (DataLoader worker processes end with it)."""
        self._iterator = None
        self._pass_rng, self._pass_id, self._consumed = None, None, 0

    def _to_device(self, batch: Any) -> Any:
        # Concrete types first and no recursion for flat (x, y) batches: this runs every step.
        tensor, device = torch.Tensor, self.device
        kind = type(batch)
        if kind is tuple or kind is list:
            # value.to(device) returns value itself when it is there already; the comparison
            # is cheaper than the call.
            moved = [
                (value if value.device == device else value.to(device, non_blocking=True))
                if isinstance(value, tensor)
                else self._to_device(value)
                for value in batch
            ]
            return moved if kind is list else tuple(moved)
        if isinstance(batch, tensor):
            return batch.to(device, non_blocking=True)
        if isinstance(batch, Mapping):
            return {key: self._to_device(value) for key, value in batch.items()}
        if isinstance(batch, (list, tuple)):
            items = [self._to_device(value) for value in batch]
            # a namedtuple is rebuilt field by field, other subclasses from the list
            return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)
        return batch

    # -- loss ---------------------------------------------------------------------------------
    def _autocast(self) -> Any:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _loss(self, batch: Any, training: bool) -> Any:
        source = "batch_fn" if self.batch_fn is not None else "loss_fn"
        with self._autocast():
            if self.batch_fn is not None:
                loss = self.batch_fn(batch)
            elif isinstance(batch, Mapping):
                loss = self._dict_loss(batch)
            elif isinstance(batch, (list, tuple)) and len(batch) >= 2:
                if self.loss_fn is None:
                    raise invalid(
                        "loss_fn",
                        "is needed for (inputs, target) batches (or pass batch_fn=)",
                        loss_fn=None,
                    )
                loss = self.loss_fn(self.model(*batch[:-1]), batch[-1])
            else:
                raise invalid(
                    "train_loader",
                    "must yield (inputs, target) tuples or dicts, or come with "
                    "batch_fn=(batch -> loss)",
                    batch=type(batch),
                )
        self._check_loss(loss, source, training)
        return loss

    @staticmethod
    def _check_loss(loss: Any, source: str, training: bool) -> None:
        """Raise the user-facing error when ``loss`` is not a scalar tensor with a gradient."""
        error = TorchTrainer._loss_error(loss, source, training)
        if error is not None:
            raise error

    @staticmethod
    def _loss_error(loss: Any, source: str, training: bool) -> Exception | None:
        """The user-facing error for a ``loss`` that is not a scalar tensor with a gradient,
        or None when it is one."""
        if not isinstance(loss, torch.Tensor):
            return TypeError(
                f"Argument `{source}` must return the loss as a scalar torch.Tensor. "
                f"Received: a {type(loss).__name__}"
            )
        if loss.numel() != 1:
            return invalid(
                source,
                "must return a scalar loss (reduce it, e.g. reduction='mean')",
                loss_shape=tuple(loss.shape),
            )
        if training and not loss.requires_grad:
            return invalid(
                source,
                "must return a loss computed from the model's trainable parameters "
                "(it has no grad_fn)",
                requires_grad=False,
            )
        return None

    def _dict_loss(self, batch: Mapping[str, Any]) -> Any:
        if self.loss_fn is None:
            out = self.model(**batch)
            if isinstance(out, Mapping) and "loss" in out:
                return out["loss"]
            return getattr(out, "loss", out)
        if self.target_key not in batch:
            raise invalid(
                "target_key",
                "must name the target entry of the dict batches",
                target_key=self.target_key,
                keys=sorted(batch),
            )
        inputs = {key: value for key, value in batch.items() if key != self.target_key}
        return self.loss_fn(self.model(**inputs), batch[self.target_key])

    # -- validation ---------------------------------------------------------------------------
    @property
    def evaluate(self) -> Callable[[], float]:
        """``evaluate() -> float``: mean loss on a fixed subset, the first ``val_batches``
        batches of ``val_loader`` (taken once, then reused), in eval mode without gradients.

        Only a trainer with a ``val_loader`` has it: without one, ``getattr(trainer,
        "evaluate", None)`` is None, so ``lrscope.verify``, sweeps and the CLI rank by training
        loss as for any trainer that cannot evaluate (an ``evaluate`` that raised made them
        fail), and calling it raises AttributeError naming ``val_loader``."""
        if self.val_loader is None:
            raise AttributeError(
                "TorchTrainer.evaluate needs a val_loader (pass val_loader=... to "
                "lrscope.torch.trainer)"
            )
        return self._evaluate

    def _evaluate(self) -> float:
        if self._val_cache is None:
            # Drawing the subset (a shuffled loader seeds its sampler) must not move any RNG.
            rng = _global_rng_state()
            generators = _loader_generators(self.val_loader)
            generator_states = [g.get_state() for g in generators]
            try:
                batches = list(itertools.islice(iter(self.val_loader), self.val_batches))
            finally:
                for gen, gen_state in zip(generators, generator_states, strict=True):
                    gen.set_state(gen_state)
                _set_global_rng_state(rng)
            if not batches:
                raise invalid("val_loader", "must yield at least one batch", batches_yielded=0)
            self._val_cache = [self._to_device(batch) for batch in batches]
        modes = {name: module.training for name, module in self.model.named_modules()}
        self.model.eval()
        try:
            with torch.no_grad():
                total = sum(
                    self._loss(batch, training=False).detach().float().reshape(())
                    for batch in self._val_cache
                )
        finally:
            for name, module in self.model.named_modules():
                module.training = modes[name]
        return float(total) / len(self._val_cache)

    def metadata(self) -> dict[str, str | int | float | bool | None]:
        """What the result should record about this setup (JSON scalars)."""
        info: dict[str, str | int | float | bool | None] = {
            "framework": "torch",
            "torch_version": str(torch.__version__),
            "optimizer": type(self.optimizer).__name__,
            "param_groups": len(self.base_lrs),
            "accumulation_steps": self.accumulation_steps,
            "autocast_dtype": None if self.autocast_dtype is None else str(self.autocast_dtype),
            "grad_scaler": self.scaler is not None,
            "device": str(self.device),
        }
        for i, lr in enumerate(self.base_lrs):
            info[f"group{i}_base_lr"] = lr
            info[f"group{i}_lr_ratio"] = self.lr_ratios[i]
        batch_size = getattr(self.train_loader, "batch_size", None)
        if isinstance(batch_size, int):
            info["batch_size"] = batch_size
        return info


#: Build the :class:`TorchTrainer` (for ``lrscope.range_test``, sweeps and the CLI); the same
#: arguments as the class (an alias, so the two signatures cannot drift apart).
trainer = TorchTrainer


def find_lr(
    model: Any,
    optimizer: Any,
    loss_fn: Callable[..., Any] | None,
    train_loader: Iterable[Any],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    mode: str = "exp",
    val_loader: Iterable[Any] | None = None,
    val_batches: int = 4,
    eval_every: int | None = None,
    accumulation_steps: int = 1,
    scaler: Any = None,
    autocast_dtype: Any = None,
    device: Any = None,
    batch_fn: Callable[[Any], Any] | None = None,
    target_key: str = "labels",
    beta: float = 0.98,
    diverge_factor: float = 3.0,
    stop_on_divergence: bool = True,
    raise_on_divergence: bool = False,
    chunk_size: int | None = None,
    lr_diverge: float | None = None,
    metadata: Mapping[str, str | int | float | bool | None] | None = None,
    progress: bool = False,
    retest: bool = True,
) -> RangeTestResult:
    """LR range test of a PyTorch training setup; the model, optimizer, scaler, RNGs and data
    position are restored exactly afterwards, whatever happens (divergence, error, Ctrl-C).

    The LR of the first param group ramps from ``start_lr`` to ``end_lr`` over ``steps``
    optimizer steps; other groups keep their LR ratio to it. With ``val_loader``, the mean loss
    on its first ``val_batches`` batches is recorded every ``eval_every`` steps (default: once
    per chunk, about 20 times). The other options are those of :func:`lrscope.range_test` and
    :class:`TorchTrainer`.

    >>> result = find_lr(model, optimizer, torch.nn.functional.mse_loss, loader,
    ...                  start_lr=1e-5, end_lr=1.0, steps=100)  # doctest: +SKIP
    >>> result.suggest().lr  # doctest: +SKIP
    """
    torch_trainer = trainer(
        model,
        optimizer,
        loss_fn,
        train_loader,
        val_loader=val_loader,
        val_batches=val_batches,
        accumulation_steps=accumulation_steps,
        scaler=scaler,
        autocast_dtype=autocast_dtype,
        device=device,
        batch_fn=batch_fn,
        target_key=target_key,
    )
    torch_trainer._replayable = False  # its one snapshot comes before the first batch
    if val_loader is not None and eval_every is None and isinstance(steps, int):
        # Once per chunk: the validation subset costs one extra host sync per chunk.
        eval_every = chunk_size or auto_chunk(steps)
    try:
        return range_test(
            torch_trainer,
            start_lr=start_lr,
            end_lr=end_lr,
            steps=steps,
            mode=mode,
            beta=beta,
            diverge_factor=diverge_factor,
            stop_on_divergence=stop_on_divergence,
            raise_on_divergence=raise_on_divergence,
            chunk_size=chunk_size,
            eval_every=eval_every,
            lr_diverge=lr_diverge,
            metadata={**torch_trainer.metadata(), **(metadata or {})},
            progress=progress,
            retest=retest,
        )
    finally:
        torch_trainer.close()
