"""Regime networks: a GRU or a Transformer encoder over the last ``lookback`` context rows.

Both map a window (B, T, 8) of raw context features (NaN where a source is missing) to an
8-dim embedding and five regime logits computed from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trader_ml.models.inputs import MaskedStandardize, TrendInputs
from trader_ml.schema import CONTEXT_FEATURES, REGIME_EMBEDDING_DIM, REGIME_LAYERS, REGIME_TYPES, REGIMES


def default_layers(model_type: str) -> int:
    """Layers when none are asked for: one GRU layer, or two Transformer encoder layers."""
    return REGIME_LAYERS[model_type]


@dataclass(frozen=True)
class RegimeModelConfig:
    model_type: str = REGIME_TYPES[0]
    lookback: int = 63
    n_features: int = len(CONTEXT_FEATURES)
    hidden_size: int = 32
    # GRU layers, or Transformer encoder layers; None: default_layers(model_type)
    num_layers: int | None = None
    n_heads: int = 4
    dropout: float = 0.1
    feature_dropout: float = 0.3  # chance, per training window, that an input column is hidden
    trend_halflives: tuple[int, ...] = (5, 10, 21)  # of SPY's weighted return, volatility, downside
    filter_days: int = 21  # days of per-day evidence the regime filter reads
    stay_probability: float = 0.9  # the filter's prior that tomorrow's regime is today's (training
    # builds the model with the training labels' own persistence instead)
    embedding_dim: int = REGIME_EMBEDDING_DIM
    n_regimes: int = len(REGIMES)

    def __post_init__(self) -> None:
        if self.model_type not in REGIME_TYPES:
            raise ValueError(f"model_type must be one of {REGIME_TYPES}, not {self.model_type!r}")
        if self.num_layers is None:
            object.__setattr__(self, "num_layers", default_layers(self.model_type))


class RegimeHead(nn.Module):
    """Per-day states (B, T, H) -> each day's embedding (B, D, E) and regime evidence (B, D, K)
    for the last D = ``filter_days`` days; training fits every one of those days to its label.

    A prediction reads the evidence of those days through a forward filter whose regime stays
    put with probability ``stay_probability`` from one day to the next: one odd day cannot flip
    the regime, a lasting change does. Consecutive days' evidence overlaps (each state has read
    the same past), so the filter may count it at ``evidence_weight`` < 1; training picks both,
    and a ``temperature`` that makes the probabilities mean what they say on validation days.
    """

    def __init__(self, config: RegimeModelConfig) -> None:
        super().__init__()
        self.filter_days = config.filter_days
        self.embed = nn.Linear(config.hidden_size, config.embedding_dim)
        self.classify = nn.Linear(config.embedding_dim, config.n_regimes)
        self.register_buffer("log_transition", torch.zeros(config.n_regimes, config.n_regimes))
        self.register_buffer("evidence_weight", torch.tensor(1.0))
        self.register_buffer("temperature", torch.tensor(1.0))  # calibration, set on validation days
        self.set_persistence(config.stay_probability)

    def set_persistence(self, stay_probability: float) -> None:
        k = self.log_transition.shape[0]
        transition = torch.full((k, k), (1.0 - stay_probability) / (k - 1)).fill_diagonal_(stay_probability)
        self.log_transition.copy_(transition.log())

    def daily(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings = torch.tanh(self.embed(states[:, -self.filter_days :]))  # (B, D, E)
        return self.classify(embeddings), embeddings  # (B, D, K), (B, D, E)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(filtered log-probabilities (B, K), today's embedding (B, E))."""
        evidence, embeddings = self.daily(states)
        evidence = evidence * self.evidence_weight
        log_probs = evidence[:, 0].log_softmax(dim=-1)
        for day in range(1, evidence.shape[1]):
            prior = torch.logsumexp(log_probs.unsqueeze(-1) + self.log_transition, dim=1)  # (B, K)
            log_probs = (prior + evidence[:, day]).log_softmax(dim=-1)
        return (log_probs / self.temperature).log_softmax(dim=-1), embeddings[:, -1]


class RegimeNet(nn.Module):
    """Shared shape of both networks: ``states`` is the architecture, the head is common."""

    head: RegimeHead
    inputs: MaskedStandardize
    trend: TrendInputs

    def _build_inputs(self, config: RegimeModelConfig) -> int:
        """The input layers; returns the width of each day's input vector."""
        self.inputs = MaskedStandardize(config.n_features, config.feature_dropout)
        self.trend = TrendInputs(config.lookback, CONTEXT_FEATURES.index("spy_return_1d"), config.trend_halflives)
        return 2 * config.n_features + 3 * len(config.trend_halflives)

    def fit_inputs(self, train_rows: np.ndarray, train_windows: np.ndarray) -> None:
        """Scalers from training days only: the raw rows, and the trend inputs of training windows."""
        self.inputs.fit(train_rows)
        self.trend.fit(train_windows)

    def day_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.inputs(x), self.trend(x)], dim=-1)

    def states(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def daily_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Regime evidence of each of the window's last ``filter_days`` days: (B, D, K)."""
        return self.head.daily(self.states(x))[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, F) raw -> (log-probabilities (B, K), embedding (B, E)) for the last day."""
        return self.head(self.states(x))


class GRURegime(RegimeNet):
    def __init__(self, config: RegimeModelConfig) -> None:
        super().__init__()
        self.config = config
        width = self._build_inputs(config)
        self.gru = nn.GRU(
            width,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.head = RegimeHead(config)

    def states(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.day_inputs(x))  # (B, T, H): state t has read days up to t
        return states


class TransformerRegime(RegimeNet):
    def __init__(self, config: RegimeModelConfig) -> None:
        super().__init__()
        self.config = config
        self.project = nn.Linear(self._build_inputs(config), config.hidden_size)
        self.position = nn.Parameter(torch.randn(config.lookback, config.hidden_size) * 0.02)
        layer = nn.TransformerEncoderLayer(
            config.hidden_size,
            config.n_heads,
            dim_feedforward=2 * config.hidden_size,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.hidden_size)
        self.head = RegimeHead(config)
        # Day t attends to days up to t only, so each state is what was known that day.
        causal = torch.triu(torch.full((config.lookback, config.lookback), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)

    def states(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(self.day_inputs(x)) + self.position  # (B, T, H); T must equal the lookback
        return self.norm(self.encoder(h, mask=self.causal_mask))


def build_regime_model(config: RegimeModelConfig) -> GRURegime | TransformerRegime:
    return GRURegime(config) if config.model_type == "gru" else TransformerRegime(config)


class RegimeExport(nn.Module):
    """What the ONNX file computes: probabilities and embedding from raw windows."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs, embedding = self.model(x)
        return log_probs.exp(), embedding
