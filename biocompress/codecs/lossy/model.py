"""A causal 1-D convolutional autoencoder that runs block by block on a live stream.

One model serves every channel (any montage, any sampling rate): it sees one
channel at a time, in units of a per-channel scale. Every convolution is causal
(left context only), so running the network on a stream chunk after chunk, with
each layer keeping the last inputs it needs, gives the same output as running it
on the whole signal: there are no seams at chunk edges. The decoder looks
``lookahead`` latents ahead: its output is delayed by ``lookahead · stride`` samples.

The network is only the transform. Quantization, rates and CDF tables live in
:mod:`.prior`.
"""

from __future__ import annotations

import torch
from torch import nn


class CausalConv(nn.Module):
    """Conv1d whose output j sees inputs up to (j+1)·stride − 1 (left-padded)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride)
        self.context = kernel - stride  # inputs kept from the previous chunk

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        if state is None:
            state = x.new_zeros(x.shape[0], x.shape[1], self.context)
        full = torch.cat([state, x], dim=-1)
        return self.conv(full), full[..., full.shape[-1] - self.context :]


class CausalUp(nn.Module):
    """ConvTranspose1d upsampling by ``stride``; output i·stride … sees inputs ≤ i.

    ``phase_bias``: a bias per output phase (sample i·stride + r gets bias[r]) instead of
    one per output channel (single-channel output only).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, phase_bias: bool = False):
        super().__init__()
        assert kernel % stride == 0 and (c_out == 1 or not phase_bias)
        self.conv = nn.ConvTranspose1d(c_in, c_out, kernel, stride, bias=not phase_bias)
        self.phase_bias = nn.Parameter(torch.zeros(stride)) if phase_bias else None
        self.stride = stride
        self.context = kernel // stride - 1

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        if state is None:
            state = x.new_zeros(x.shape[0], x.shape[1], self.context)
        full = torch.cat([state, x], dim=-1)
        y = self.conv(full)  # length (len(full) − 1)·stride + kernel
        start = self.context * self.stride
        y = y[..., start : start + x.shape[-1] * self.stride]
        if self.phase_bias is not None:
            y = (y.reshape(y.shape[0], 1, -1, self.stride) + self.phase_bias).reshape(y.shape[0], 1, -1)
        return y, full[..., full.shape[-1] - self.context :]


class _Stack(nn.Module):
    """Layers with an activation between them (not after the last)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.act = nn.GELU()
        self.skip_act = {len(layers) - 1}

    def forward(self, x, states=None):
        states = states or [None] * len(self.layers)
        new = []
        for i, (layer, st) in enumerate(zip(self.layers, states)):
            x, s = layer(x, st)
            new.append(s)
            if i not in self.skip_act:
                x = self.act(x)
        return x, new


class ConvAutoencoder(nn.Module):
    """Encoder: 1 → ``latent`` channels at 1/``stride`` the sample rate; decoder back.

    ``stride`` = 2**``levels``. ``arch`` "conv": ``levels`` stride-2 convolutions and as
    many stride-2 transposed convolutions; "strided": one Conv1d of stride ``stride``
    (kernel 3·stride) and one ConvTranspose1d of stride ``stride`` at the ends, every
    other convolution at the latent rate (several times faster on a CPU). The config is
    stored with the model; archives name the model by id.
    """

    def __init__(self, levels: int = 4, width: int = 32, latent: int = 4, kernel: int = 6, lookahead: int = 4,
                 arch: str = "conv"):
        super().__init__()
        self.config = {"levels": levels, "width": width, "latent": latent, "kernel": kernel, "lookahead": lookahead}
        if arch != "conv":
            self.config["arch"] = arch
        self.stride = 2**levels
        self.lookahead = lookahead
        if arch == "strided":
            s = self.stride
            self.encoder = _Stack([CausalConv(1, width, 3 * s, s), CausalConv(width, width, 3),
                                   CausalConv(width, width, 3), CausalConv(width, latent, 3)])
            self.decoder = _Stack([CausalConv(latent, width, lookahead + 3), CausalConv(width, width, 3),
                                   CausalConv(width, width, 3), CausalUp(width, 1, 3 * s, s, phase_bias=True)])
            return
        if arch != "conv":
            raise ValueError(f"arch must be 'conv' or 'strided', got {arch!r}")
        widths = [min(width, 16 * 2**i) for i in range(levels)]
        enc = [CausalConv(1, widths[0], kernel, 2)]
        enc += [CausalConv(widths[i - 1], widths[i], kernel, 2) for i in range(1, levels)]
        enc += [CausalConv(widths[-1], widths[-1], 3), CausalConv(widths[-1], latent, 3)]
        self.encoder = _Stack(enc)
        dec = [CausalConv(latent, widths[-1], lookahead + 3), CausalConv(widths[-1], widths[-1], 3)]
        dec += [CausalUp(widths[i], widths[max(i - 1, 0)], kernel, 2) for i in range(levels - 1, 0, -1)]
        dec += [CausalUp(widths[0], widths[0], kernel, 2), CausalConv(widths[0], 1, 5)]
        self.decoder = _Stack(dec)

    @property
    def delay(self) -> int:
        """Samples between an input sample and its reconstruction (decoder look-ahead)."""
        return self.lookahead * self.stride

    def encode(self, x: torch.Tensor, state=None):
        """(batch, 1, n) with n a multiple of ``stride`` → latents (batch, latent, n / stride)."""
        return self.encoder(x, state)

    def decode(self, y: torch.Tensor, state=None):
        """Latents → (batch, 1, n·stride); output sample t reconstructs input t − ``delay``."""
        return self.decoder(y, state)
