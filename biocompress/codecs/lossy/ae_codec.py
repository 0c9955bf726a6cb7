"""Lossy codec: principal components through the autoencoder, latents rounded and range-coded.

A stream (a recording, or a live acquisition) is encoded continuously: the encoder
keeps its state from chunk to chunk. It is cut into blocks of samples [t0, t1);
a block's payload carries the rounded latents the decoder needs for exactly
those samples: the block's own, ``context`` latents before it (the decoder's
memory) and ``lookahead`` after it. Every block therefore decodes on its own,
from a zero decoder state, to the same samples the continuous decoder gives:
random access, and no seams at block edges.

Latent rows are coded by the same forward-adaptive range coder as the lossless
residuals (segments of 32 latents choose a scale class and shape from frozen,
shipped tables), so encoder and decoder on any machine parse the same integers.
"""

from __future__ import annotations

import math
import struct
import threading
from contextlib import contextmanager

import numpy as np
import torch

from ...errors import CorruptArchiveError
from ..base import Codec, check_declared_shape, register_codec
from ..lossless import residual_coder
from . import model_file
from .equalizer import EqualizedDecoding
from .model import CausalUp, ConvAutoencoder
from .qualities import QUALITY_STEPS  # noqa: F401 - the steps this codec's qualities name
from .spatial import Spatial

_HEADER = struct.Struct("<IIHHHH")  # n samples, block latents, context before, lookahead after, components, latent ch
LATENT_SEGMENT = 32


@contextmanager
def one_thread():
    """Torch on one thread: its convolutions then give the same floats whatever thread count
    the caller (or a worker process) runs with, so a machine always decodes alike. Torch's
    setting is the process's: the first of several threads inside sets it, the last restores it."""
    global _inside, _before
    with _threads_lock:
        if _inside == 0:
            _before = torch.get_num_threads()
            torch.set_num_threads(1)
        _inside += 1
    try:
        yield
    finally:
        with _threads_lock:
            _inside -= 1
            if _inside == 0:
                torch.set_num_threads(_before)


_threads_lock = threading.Lock()
_inside, _before = 0, 1


def decoder_context(model: ConvAutoencoder) -> int:
    """Latents before a block that the decoder's receptive field reaches."""
    samples_per_input, total = 1.0, 0.0  # in latents
    for layer in model.decoder.layers:
        total += layer.context / samples_per_input
        if isinstance(layer, CausalUp):
            samples_per_input *= layer.stride
    return int(math.ceil(total))


class AEStreamEncoder:
    """Push chunks of a stream, get block payloads back as soon as their latents exist.

    The stream is taken to hold its first value before it starts, and its last value
    after it ends (``context`` latents of lead-in, coded with the first block): a causal
    network started from silence would otherwise see a step at the first sample.
    """

    def __init__(self, codec: "AECodec", block: int, when_due: bool = False):
        if block % codec.model.stride:
            raise ValueError(f"block must be a multiple of {codec.model.stride} samples")
        self.codec, self.block = codec, block
        # when_due: run the network only once the next block can be completed (live streams push
        # chunks of a few samples; one call per block costs a tenth of one per chunk, and the
        # block leaves at the same push)
        self.when_due = when_due
        self.model = codec.model
        self._state = None
        self._pending = np.zeros((codec.spatial.sigmas.size, 0))  # samples not yet a whole stride
        self._latents: list[np.ndarray] = []  # rounded, (components, latent, m) each
        self._lead = codec.context  # latents of lead-in before sample 0
        self._first_latent = 0  # index of _latents[0][..., 0], counted from the lead-in's start
        self._next_t0 = 0
        self.n_samples = 0
        self._last = None  # last value of each channel (repeated after the end)

    def push(self, x: np.ndarray) -> list[tuple[int, int, bytes]]:
        """(n_ch, m) values → [(t0, t1, payload)] of the blocks now complete."""
        x = np.asarray(x, np.float64)
        if x.shape[1] == 0:
            return []
        if self.n_samples == 0:
            lead = np.repeat(x[:, :1], self._lead * self.model.stride, axis=1)
            self._pending = np.concatenate([self._pending, lead], axis=1)
        self.n_samples += x.shape[1]
        self._last = x[:, -1:]
        self._pending = np.concatenate([self._pending, x], axis=1)
        s = self.model.stride
        if self.when_due and self.n_samples < -(-(self._next_t0 + self.block) // s) * s + self.model.lookahead * s:
            return []
        usable = self._pending.shape[1] - self._pending.shape[1] % self.model.stride
        self._encode(self._pending[:, :usable])
        self._pending = self._pending[:, usable:]
        return self._emit(final=False)

    def finish(self) -> list[tuple[int, int, bytes]]:
        """Pad the end (zeros after the last sample) so the last blocks get their look-ahead."""
        s = self.model.stride
        pad = (-self._pending.shape[1]) % s + self.model.lookahead * s
        last = self._last if self._last is not None else self.codec.spatial.offsets[:, None]
        tail = np.concatenate([self._pending, np.repeat(last, pad, axis=1)], axis=1)
        self._encode(tail)
        self._pending = self._pending[:, :0]
        return self._emit(final=True)

    def _encode(self, x: np.ndarray) -> None:
        if x.shape[1] == 0:
            return
        c = self.codec
        z = c.spatial.to_components(x, c.coded).astype(np.float32)
        with torch.inference_mode(), one_thread():
            y, self._state = self.model.encode(torch.from_numpy(z)[:, None, :], self._state)
        steps = c.steps[:, None, None]
        self._latents.append(np.rint(y.numpy() / steps).astype(np.int64))

    def _emit(self, final: bool) -> list[tuple[int, int, bytes]]:
        out = []
        s, L, R = self.model.stride, self.model.lookahead, self.codec.context
        lat = np.concatenate(self._latents, axis=2) if self._latents else None
        have = self._first_latent + (lat.shape[2] if lat is not None else 0)
        while self._next_t0 < self.n_samples:
            t0 = self._next_t0
            t1 = min(t0 + self.block, self.n_samples) if final else t0 + self.block
            if not final and t1 > self.n_samples:
                break
            j0, j1 = self._lead + t0 // s, self._lead + -(-t1 // s)
            if j1 + L > have:
                break
            a = max(0, j0 - R)
            part = lat[:, :, a - self._first_latent : j1 + L - self._first_latent]
            out.append((t0, t1, self.codec.pack(part, t1 - t0, j0 - a, j1 - j0)))
            self._next_t0 = t1
        keep_from = max(0, self._lead + self._next_t0 // s - R)  # latents a later block may still need
        if lat is not None and keep_from > self._first_latent:
            lat = lat[:, :, keep_from - self._first_latent :]
            self._first_latent = keep_from
        self._latents = [lat] if lat is not None else []
        return out


@register_codec
class AECodec(Codec):
    """Lossy: values (n_ch, n) → approximate values. Config: the model's id, the quality's
    relative step and the stream's spatial transform (:class:`.spatial.Spatial`)."""

    codec_id = "ae-v1"
    config_fields = ("model", "step", "spatial")
    lossy = True

    def __init__(self, model: str, step: float, spatial: dict):
        self.model_name = model
        self.model, _, _ = model_file.load_id(model)
        self.step = float(step)
        if not self.step > 0:
            raise ValueError(f"step must be positive, got {step}")
        self.spatial = Spatial.from_config(spatial)
        self.coded = self.spatial.coded(self.step)
        self.steps = self.spatial.steps(self.step)[self.coded].astype(np.float32)
        self.context = decoder_context(self.model)

    @classmethod
    def for_stream(cls, start: np.ndarray, quality: int | None = None, step: float | None = None,
                   model_path=None, groups=None, gains=None) -> "AECodec":
        """A codec fitted to the start of a stream (values (n_ch, n)); ``groups``: a label per
        channel, channels of one label sharing a scale (default: each channel its own);
        ``gains``: per channel, a factor on its scale (:meth:`Spatial.fit`)."""
        model, _, meta = model_file.load(model_path)
        step = QUALITY_STEPS[quality] if step is None else step
        return cls(meta["model_id"], step, Spatial.fit(start, groups, gains).to_config())

    def get_config(self) -> dict:
        return {"id": self.codec_id, "model": self.model_name, "step": self.step, "spatial": self.spatial.to_config()}

    def stream(self, block: int, when_due: bool = False) -> AEStreamEncoder:
        return AEStreamEncoder(self, block, when_due)

    def encode(self, values) -> bytes:
        """One self-contained block holding every sample of ``values``."""
        x = np.asarray(values, np.float64)
        if x.ndim != 2 or x.shape[0] != self.spatial.sigmas.size:
            raise ValueError(f"expected ({self.spatial.sigmas.size}, n) values, got {x.shape}")
        enc = self.stream(block=-(-max(x.shape[1], 1) // self.model.stride) * self.model.stride)
        blocks = enc.push(x) + enc.finish()
        if len(blocks) != 1:  # pragma: no cover
            raise AssertionError("one block expected")
        return blocks[0][2]

    def pack(self, q: np.ndarray, n: int, before: int, inside: int) -> bytes:
        after = q.shape[2] - before - inside
        rows = list(q.reshape(-1, q.shape[2]))
        body = residual_coder.encode_rows(rows, LATENT_SEGMENT, shaped=True) if rows else b""
        return _HEADER.pack(n, inside, before, after, q.shape[0], q.shape[1]) + body

    def unpack(self, payload: bytes) -> tuple[np.ndarray, int, int]:
        """(latent integers (components, latent, m), samples, context before) of a payload."""
        if len(payload) < _HEADER.size:
            raise CorruptArchiveError(f"{self.codec_id} payload shorter than its header")
        n, inside, before, after, n_comp, n_lat = _HEADER.unpack_from(payload)
        check_declared_shape(self.codec_id, max(self.spatial.sigmas.size, n_comp * n_lat), n)
        s = self.model.stride
        if (n_comp != self.coded.size or n_lat != self.model.config["latent"] or inside != -(-n // s)
                or before > self.context or after != self.model.lookahead):
            raise CorruptArchiveError(f"{self.codec_id} payload header does not match its codec")
        m = before + inside + after
        if n_comp == 0:
            if len(payload) != _HEADER.size:
                raise CorruptArchiveError(f"{self.codec_id} payload has unexpected trailing bytes")
            return np.zeros((0, n_lat, m), np.int64), n, before
        rows = residual_coder.decode_rows(payload[_HEADER.size :], np.full(n_comp * n_lat, m, np.int64),
                                          LATENT_SEGMENT, shaped=True)
        return np.stack(rows).reshape(n_comp, n_lat, m), n, before

    def decode(self, payload: bytes) -> np.ndarray:
        q, n, before = self.unpack(payload)
        s = self.model.stride
        z = np.zeros((self.spatial.sigmas.size, n))
        if q.shape[0]:
            y = torch.from_numpy((q * self.steps[:, None, None]).astype(np.float32))
            with torch.inference_mode(), one_thread():
                out, _ = self.model.decode(y)
            first = before * s + self.model.delay
            z[self.coded] = out[:, 0, first : first + n].numpy()
        return self.spatial.from_components(z)


@register_codec
class EqualizedAECodec(EqualizedDecoding, AECodec):
    """``ae-v1`` whose decoded blocks go through per-channel band gains (:mod:`.equalizer`)."""

    codec_id = "ae-v2"
    config_fields = AECodec.config_fields + ("bands", "gains")

    def __init__(self, model: str, step: float, spatial: dict, bands, gains: str):
        super().__init__(model, step, spatial)
        self._equalize(self.spatial.sigmas.size, bands, gains)

    def get_config(self) -> dict:
        return {**super().get_config(), "bands": self.bands, "gains": self.gains}
