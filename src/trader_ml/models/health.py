"""Health networks: an autoencoder or a VAE over an asset's inputs, with a health head.

The inputs (``health_inputs.MODEL_INPUTS``) are the guide's ten features, the optional long
memory of volatility and each log volatility against its day's universe. The latent (16-dim)
must both rebuild the standardised inputs and predict whether the asset avoids the worst fifth
of its universe over the next 21 days; the two losses train together. The health logit starts
from a volatility prior (volatility clustering is the strongest known predictor of near-term
drawdown): a logistic fit on a blend of day-relative log volatilities, fixed before the
network trains. The head learns a correction to it from the latent and the reconstruction
error, and ``correction_weight`` (chosen on validation days, 0 allowed) says how much of that
correction the served score keeps: a correction that does not help on validation is dropped,
so the score cannot rank worse there than its prior.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from trader_ml.health_inputs import MODEL_INPUTS, RELATIVE_COLUMNS, RELATIVE_VOLS
from trader_ml.models.inputs import MaskedStandardize
from trader_ml.schema import HEALTH_LATENT_DIM, HEALTH_TYPES


@dataclass(frozen=True)
class HealthModelConfig:
    model_type: str = HEALTH_TYPES[0]
    n_features: int = len(MODEL_INPUTS)
    hidden_size: int = 64
    latent_dim: int = HEALTH_LATENT_DIM
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.model_type not in HEALTH_TYPES:
            raise ValueError(f"model_type must be one of {HEALTH_TYPES}, not {self.model_type!r}")


# The prior reads one number: a blend of day-relative log volatilities. One weight cannot overfit
# collinear windows. A universe's rows choose the blend by their count of names alone: the mean
# of a month, a quarter and a year ranked best of the windows measured on the sample before this
# design (docs/models.md); with a handful of names any two blends rank a year's names apart by
# about 0.04 in daily Spearman, so a small universe reads the blend half-way to the quarter
# alone, which the rank check judges against (bench/bench_health_blends.py).
PRIOR_BLENDS: dict[str, dict[str, float]] = {
    "mean of vol_21d, vol_63d, vol_252d": {"vol_21d": 1 / 3, "vol_63d": 1 / 3, "vol_252d": 1 / 3},
    "half-way to vol_63d": {"vol_21d": 1 / 6, "vol_63d": 2 / 3, "vol_252d": 1 / 6},
}
WIDE_BLEND, SMALL_UNIVERSE_BLEND = PRIOR_BLENDS
RELATIVE_INDEX = tuple(MODEL_INPUTS.index(column) for column in RELATIVE_COLUMNS)


def blend_mix(blend: str) -> torch.Tensor:
    """(RELATIVE_VOLS,) the weight a blend gives each day-relative log volatility (sum 1)."""
    weights = PRIOR_BLENDS[blend]
    return torch.tensor([weights.get(name, 0.0) for name in RELATIVE_VOLS])


def prior_inputs(x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """(B, 1) the blend ``mix`` of the day-relative log volatilities of input rows."""
    return x[:, list(RELATIVE_INDEX)] @ mix.to(x.dtype)[:, None]


class HealthParts(NamedTuple):
    standardized: torch.Tensor  # (B, F) the input, as the reconstruction target
    reconstruction: torch.Tensor  # (B, F)
    latent: torch.Tensor  # (B, L) the mean latent (the VAE's mu)
    log_var: torch.Tensor | None  # (B, L) VAE only
    health_logit: torch.Tensor  # (B,) before calibration


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class HealthNet(nn.Module):
    """Input rows (B, F) -> reconstruction, latent and health logit; ``model_type`` picks
    a plain autoencoder or a VAE (sampled latent while training, its mean otherwise)."""

    def __init__(self, config: HealthModelConfig) -> None:
        super().__init__()
        self.config = config
        hidden, latent = config.hidden_size, config.latent_dim
        self.inputs = MaskedStandardize(config.n_features, with_mask=False)
        self.encoder = _mlp([config.n_features, hidden, hidden], config.dropout)
        self.to_latent = nn.Linear(hidden, latent)
        self.to_log_var = nn.Linear(hidden, latent) if config.model_type == "vae" else None
        self.decoder = _mlp([latent, hidden, hidden, config.n_features], config.dropout)
        self.health = _mlp([latent + 1, hidden // 2, 1], config.dropout)
        # The volatility prior: its blend of day-relative log vols, then (weight, bias), fit before training.
        self.register_buffer("prior_mix", blend_mix(WIDE_BLEND))
        self.register_buffer("prior", torch.zeros(2))
        # How much of the head's correction the score keeps: 1 while training, then chosen on validation.
        self.register_buffer("correction_weight", torch.tensor(1.0))
        # Platt scaling of the health logit, fit on validation after training.
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))

    def parts(self, x: torch.Tensor) -> HealthParts:
        z = self.inputs(x)
        h = torch.nn.functional.gelu(self.encoder(z))
        mean = self.to_latent(h)
        log_var = self.to_log_var(h) if self.to_log_var is not None else None
        code = mean
        if log_var is not None and self.training:
            code = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        reconstruction = self.decoder(code)
        # The head reads the error without moving it: the decoder learns only to rebuild.
        error = ((reconstruction - z) ** 2).mean(dim=-1, keepdim=True).detach()
        correction = self.health(torch.cat([mean, torch.log1p(error)], dim=-1)).squeeze(-1)
        logit = self.prior_logit(x) + self.correction_weight * correction
        return HealthParts(z, reconstruction, mean, log_var, logit)

    def prior_logit(self, x: torch.Tensor) -> torch.Tensor:
        return prior_inputs(x, self.prior_mix)[:, 0] * self.prior[0] + self.prior[1]

    def health_probability(self, logit: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.calibration[0] * logit + self.calibration[1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, F) raw -> (health probability (B,), latent (B, L), reconstruction error (B,))."""
        parts = self.parts(x)
        error = ((parts.reconstruction - parts.standardized) ** 2).mean(dim=-1)
        return self.health_probability(parts.health_logit), parts.latent, error
