"""Standardisation with an explicit missing-value mask, inside the network so exports carry it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class MaskedStandardize(nn.Module):
    """(x - mean) / scale with NaN -> 0, and the mask of present values appended.

    The scaler lives in buffers, so it is saved with the weights and exported to ONNX: serving
    feeds raw rows, NaN included. A column never present in the training rows counts as missing
    whatever values it holds later (``seen``): the network never learned what it means, and a
    0/1 scaler would feed it unscaled. (..., F) -> (..., 2F), or (..., F) without ``with_mask``.
    """

    def __init__(self, n_features: int, feature_dropout: float = 0.0, with_mask: bool = True) -> None:
        super().__init__()
        self.feature_dropout = feature_dropout
        self.with_mask = with_mask
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("seen", torch.ones(n_features, dtype=torch.bool))
        # False until ``fit``: an unfit scaler is 0/1, which would quietly feed raw values.
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, rows: np.ndarray) -> MaskedStandardize:
        """Set the scaler from training rows (NaN ignored; a column never seen stays 0 / 1)."""
        rows = np.asarray(rows, dtype=np.float64)
        present = ~np.isnan(rows)
        count = present.sum(axis=0)
        mean = np.where(count > 0, np.where(present, rows, 0).sum(axis=0) / np.maximum(count, 1), 0.0)
        var = np.where(present, (rows - mean) ** 2, 0).sum(axis=0) / np.maximum(count - 1, 1)
        scale = np.where((count > 1) & (var > 1e-18), np.sqrt(var), 1.0)
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        self.seen.copy_(torch.as_tensor(count > 0))
        self.fitted.fill_(True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        present = ~torch.isnan(x) & self.seen
        if self.training and self.feature_dropout > 0:
            # Hide whole columns of some samples, as a missing source would: the network learns
            # not to lean on any one input.
            keep = torch.rand(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1], device=x.device) >= self.feature_dropout
            present = present & keep
        z = torch.where(present, (x - self.mean) / self.scale, torch.zeros_like(x))
        return torch.cat([z, present.to(x.dtype)], dim=-1) if self.with_mask else z


class TrendInputs(nn.Module):
    """SPY's exponentially weighted return, volatility and downside deviation at several
    half-lives, the inputs persistent-regime models are built on, computed inside the network
    from the raw window's daily returns.

    Each day's values read that day and the days before it in the window only (the weights
    are lower-triangular, renormalised where the window is short), then are standardised with
    a scaler fit on training windows. (B, T, F) raw rows -> (B, T, 3 x len(halflives)).
    """

    def __init__(self, lookback: int, return_column: int, halflives: tuple[int, ...]) -> None:
        super().__init__()
        self.return_column = return_column
        lags = torch.arange(lookback)[:, None] - torch.arange(lookback)[None, :]  # t - s
        decay = torch.tensor([0.5 ** (1.0 / h) for h in halflives])[:, None, None]
        weights = torch.where(lags >= 0, decay ** lags.clamp(min=0), torch.zeros(()))
        self.register_buffer("weights", weights / weights.sum(dim=-1, keepdim=True), persistent=False)
        self.scale = MaskedStandardize(3 * len(halflives), with_mask=False)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        # Simple daily returns, not log1p: ONNX has no log1p, and log(1 + r) in float32 would
        # make the exported graph disagree with this one.
        r = torch.nan_to_num(x[..., self.return_column])[:, None, :, None]  # (B, 1, T, 1)
        # Square roots, not logs: a window without a down day has no downside deviation, and
        # the log of nearly nothing would be a huge input that float rounding moves about.
        mean = torch.matmul(self.weights, r)  # (B, H, T, 1)
        vol = torch.sqrt(torch.matmul(self.weights, r * r) + 1e-12)
        downside = torch.sqrt(torch.matmul(self.weights, torch.clamp(r, max=0.0) ** 2) + 1e-12)
        return torch.cat([mean, vol, downside], dim=1).squeeze(-1).transpose(1, 2)  # (B, T, 3H)

    def fit(self, windows: np.ndarray) -> TrendInputs:
        with torch.no_grad():
            values = self.raw(torch.as_tensor(windows, dtype=torch.float32))
        self.scale.fit(values.reshape(-1, values.shape[-1]).numpy())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(self.raw(x))
