"""The one training loop every model uses: batches, AdamW, early stopping, best-weights restore.

It knows nothing about the model it trains: the caller passes a loss function of
``(model, batch) -> scalar`` and, optionally, an ``evaluate(model) -> {name: value}`` for the
progress bar. Data are tuples of equal-length numpy arrays, held in memory.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from trader_ml.errors import TraderMLError
from trader_ml.training.options import DEVICES, FitConfig

Batch = tuple[torch.Tensor, ...]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    device: str = "cpu"

    def summary(self) -> dict:
        """What a metrics file records of the fit: seconds, epochs run, the best epoch."""
        return {
            "seconds": round(self.seconds, 3),
            "epochs_run": len(self.history),
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "device": self.device,
        }


LOG_EVERY_SECONDS = 5.0  # without a terminal: one progress line per epoch, at most this often


def progress_line(row: dict[str, float], desc: str, epochs: int, began: float) -> str:
    values = " ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch")
    return f"{desc}: epoch {int(row['epoch'])}/{epochs} {values} ({time.perf_counter() - began:.0f} s)"


def seed_everything(seed: int) -> None:
    """Same seed, same weights: Python, numpy and torch generators (kernels: see ``_fit``)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit choice must be available."""
    if name not in DEVICES:
        raise TraderMLError(f"--device must be one of {', '.join(DEVICES)}, not {name!r}")
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise TraderMLError(f"--device {name} is not available on this machine; use --device auto or cpu")
    return torch.device(name)


def _tensors(arrays: tuple[np.ndarray, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Each split moved to the device once, not once a batch."""
    # A read-only array (a view pandas handed out, say) is copied: torch warns on those.
    return tuple(torch.as_tensor(a if a.flags.writeable else a.copy()).to(device) for a in arrays)


def _batches(tensors: tuple[torch.Tensor, ...], size: int, order: np.ndarray | None):
    """Batches in ``order`` (a permutation), or in stored order when it is None."""
    n = len(tensors[0])
    index = None if order is None else torch.as_tensor(order, device=tensors[0].device)
    for lo in range(0, n, size):
        if index is None:
            yield tuple(t[lo : lo + size] for t in tensors)
        else:
            idx = index[lo : lo + size]
            yield tuple(t.index_select(0, idx) for t in tensors)


def mean_loss(model: nn.Module, loss_fn: LossFn, arrays: tuple[np.ndarray, ...] | Batch, size: int, device) -> float:
    """Average loss over a whole split (numpy arrays, or tensors already on the device),
    weighted by batch length, without gradients."""
    model.eval()
    total, count = 0.0, 0
    tensors = arrays if isinstance(arrays[0], torch.Tensor) else _tensors(arrays, device)
    with torch.no_grad():
        for batch in _batches(tensors, size, None):
            n = len(batch[0])
            total += float(loss_fn(model, batch)) * n
            count += n
    return total / max(count, 1)


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train: tuple[np.ndarray, ...],
    val: tuple[np.ndarray, ...],
    config: FitConfig,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    progress: bool = True,
    desc: str = "training",
) -> FitResult:
    """Train ``model`` in place; on return it holds the weights of the best validation epoch."""
    began = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _fit(model, loss_fn, train, val, config, evaluate, progress, desc, began)
    finally:
        torch.set_num_threads(threads)


def _train_epoch(
    model: nn.Module, loss_fn: LossFn, tensors: Batch, order: np.ndarray, optimizer, config: FitConfig
) -> float:
    """One pass over the training rows in ``order``; the mean training loss."""
    model.train()
    # Listed once: walking the module tree for every clipping step costs more than the clip.
    parameters = [group_p for group in optimizer.param_groups for group_p in group["params"]]
    total, count = 0.0, 0
    for batch in _batches(tensors, config.batch_size, order):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        loss.backward()
        if config.grad_clip:
            nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        total += float(loss.detach()) * len(batch[0])
        count += len(batch[0])
    return total / max(count, 1)


def _log_line(row: dict[str, float], desc: str, epochs: int, began: float) -> float:
    print(progress_line(row, desc, epochs, began), file=sys.stderr, flush=True)
    return time.perf_counter()


def _fit(model, loss_fn, train, val, config, evaluate, progress, desc, began) -> FitResult:
    from tqdm.auto import tqdm

    device = resolve_device(config.device)
    if device.type != "cpu":
        # GPU kernels may add in any order. On the CPU these networks' kernels are already
        # deterministic at a fixed thread count, and the call would import torch's compiler
        # (about 3 s a process, most of a small training run).
        torch.use_deterministic_algorithms(True, warn_only=True)
    model.to(device)
    # The fused kernel updates every parameter in one call: with small networks the per-tensor
    # update loop otherwise costs about a quarter of each step.
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay, **fused)
    shuffle = np.random.default_rng(config.seed)
    train_tensors, val_tensors = _tensors(train, device), _tensors(val, device)
    result = FitResult(device=str(device))
    best_loss, best_state, waited = math.inf, copy.deepcopy(model.state_dict()), 0
    logged_at = -math.inf
    # disable=None: no bar when the output is not a terminal (a scheduled job's log file).
    bar = tqdm(total=config.epochs, desc=desc, unit="epoch", disable=None if progress else True, leave=True)
    try:
        for epoch in range(1, config.epochs + 1):
            order = shuffle.permutation(len(train[0]))
            row = {"epoch": epoch, "train_loss": _train_epoch(model, loss_fn, train_tensors, order, optimizer, config)}
            row["val_loss"] = mean_loss(model, loss_fn, val_tensors, max(config.batch_size, 256), device)
            if evaluate is not None:
                model.eval()
                with torch.no_grad():
                    row.update(evaluate(model))
            result.history.append(row)
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k != "epoch"}, refresh=False)
            bar.update(1)
            # No terminal (a scheduled job's log): the bar is off, so say it is alive in plain lines.
            if progress and bar.disable and (epoch == 1 or time.perf_counter() - logged_at >= LOG_EVERY_SECONDS):
                logged_at = _log_line(row, desc, config.epochs, began)
            if row["val_loss"] < best_loss - 1e-6:
                best_loss, best_state, waited = row["val_loss"], copy.deepcopy(model.state_dict()), 0
                result.best_epoch = epoch
            else:
                waited += 1
                if waited >= config.patience:
                    result.stopped_early = True
                    bar.total = epoch  # a bar that ends where training did, not at "11/100"
                    bar.set_description(f"{desc} (stopped early)")
                    break
    except torch.cuda.OutOfMemoryError:
        raise TraderMLError(
            f"CUDA out of memory with batch size {config.batch_size}: reduce it, e.g. --batch-size "
            f"{max(config.batch_size // 2, 1)}"
        ) from None
    finally:
        bar.close()
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - began
    return result
