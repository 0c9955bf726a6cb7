"""The training rate model of the latents, kept apart from the network: a learned factorized prior.

Latent channel c has a Laplace density of learned scale ``b_c``; quantization with
step Δ is replaced by additive uniform noise of width Δ, and the rate is −log2 of
the probability of the noisy value's bin. Real coding (:mod:`.ae_codec`) sends the
rounded latents with forward-adaptive scale classes from frozen tables instead:
the prior only has to steer training towards latents that code in few bits.
"""

from __future__ import annotations

import torch
from torch import nn

_FLOOR = 1e-9


class FactorizedPrior(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(channels))

    def bits(self, y_noisy: torch.Tensor, step: float | torch.Tensor) -> torch.Tensor:
        """−log2 P of each noisy latent (batch, channels, n) under bins of width ``step``."""
        b = self.log_scale.exp()[None, :, None]
        upper = _laplace_cdf(y_noisy + step / 2, b)
        lower = _laplace_cdf(y_noisy - step / 2, b)
        return -torch.log2((upper - lower).clamp_min(_FLOOR))


def _laplace_cdf(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    e = torch.exp(-x.abs() / b)
    return torch.where(x < 0, 0.5 * e, 1.0 - 0.5 * e)
