"""Near-lossless codec: autoencoder sketch plus a closed-loop quantized residual, |error| ≤ δ.

On integer sample codes: the autoencoder's reconstruction, rounded to integers
(``x̂``), is subtracted; the rest ``r = x − x̂`` goes through closed-loop DPCM with
a uniform quantizer of step ``2δ + 1``: each ``r[t]`` is predicted by integer LPC
from the already *reconstructed* residuals, and the prediction error is quantized,
so every reconstructed code is within δ of the original (δ = 0: exact). The
quantized errors are range-coded like lossless residuals.

``dpcm_encode`` / ``dpcm_decode`` are the same loop on the codes themselves:
the plain near-lossless DPCM baseline of the benchmarks.

Float arithmetic may round the autoencoder's output differently on another machine,
which moves a rounded ``x̂`` by at most one code. The residual is therefore coded
with a bound of δ − 1 codes (δ ≥ 1), so the decoded codes stay within δ whatever
``x̂`` the decoding machine computes; channels with δ = 0 take no sketch (``x̂ = 0``)
and are coded exactly.
"""

from __future__ import annotations

import struct

import numba
import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_2d_int, check_declared_shape, register_codec
from ..bytepack import pack_arrays, unpack_arrays
from ..lossless import lpc, residual_coder
from .ae_codec import AECodec

DPCM_ORDERS = (1, 2, 4, 8, 16)
SEGMENT = 256


@numba.njit(cache=True, nogil=True)
def _dpcm(r, q_in, coefs, shift, delta, encode):
    # closed loop: prediction from reconstructed values; quantizer step 2·delta + 1
    n = r.shape[0] if encode else q_in.shape[0]
    step = 2 * delta + 1
    rec = np.zeros(n, np.int64)
    q_out = np.empty(n, np.int64)
    half = np.int64(1) << (shift - 1) if shift > 0 else np.int64(0)
    p_order = coefs.shape[0]
    for t in range(n):
        if t >= p_order:
            acc = half
            for k in range(p_order):
                acc += coefs[k] * rec[t - 1 - k]
            pred = acc >> shift
        else:
            pred = rec[t - 1] if t > 0 else 0
        if encode:
            e = r[t] - pred
            qq = (abs(e) + delta) // step
            if e < 0:
                qq = -qq
            q_out[t] = qq
        else:
            qq = q_in[t]
        rec[t] = pred + qq * step
    return q_out, rec


def noisy_predictor(x: np.ndarray, delta: int):
    """LPC (q, shift) for closed-loop DPCM: fitted with the quantizer's noise (variance
    step²/12) added to the covariance, since it predicts from reconstructed values; the
    order among :data:`DPCM_ORDERS` whose loop leaves the smallest quantized errors."""
    from scipy.linalg import solve_toeplitz

    y = x.astype(np.float64) - x.mean()
    top = max(DPCM_ORDERS)
    if x.size <= 4 * top or not y.any():
        return np.ones(1, np.int64), 0
    ac = np.array([y[: y.size - k] @ y[k:] for k in range(top + 1)]) / y.size
    noise = (2 * delta + 1) ** 2 / 12.0
    best = None
    for order in DPCM_ORDERS:
        col = ac[:order].copy()
        col[0] += noise + 1e-9 * ac[0]
        coef = solve_toeplitz(col, ac[1 : order + 1])
        q, shift = lpc.quantize(coef, int(np.abs(x).max()), 14)
        cost = np.abs(_dpcm(x, np.empty(0, np.int64), q, shift, delta, True)[0]).sum()
        if best is None or cost < best[0]:
            best = (cost, q, shift)
    return best[1], best[2]


def dpcm_encode(codes: np.ndarray, deltas) -> tuple[bytes, np.ndarray]:
    """Closed-loop DPCM of int codes (n_ch, n), |error| ≤ deltas[ch]; (payload, reconstruction)."""
    codes = check_2d_int(codes)
    deltas = np.broadcast_to(np.asarray(deltas, np.int64), (codes.shape[0],))
    rows, orders, shifts, coefs, recon = [], [], [], [], np.empty_like(codes)
    for c, x in enumerate(codes):
        q, shift = noisy_predictor(x, int(deltas[c]))
        q_out, recon[c] = _dpcm(x, np.empty(0, np.int64), q, shift, int(deltas[c]), True)
        rows.append(q_out)
        coefs.append(q)
        orders.append(q.size)
        shifts.append(shift)
    params = pack_arrays(np.asarray(orders, np.uint8), np.asarray(shifts, np.uint8), deltas.astype(np.int64),
                         np.concatenate(coefs + [np.zeros(0, np.int64)]))
    body = residual_coder.encode_rows(rows, SEGMENT, shaped=True) if rows else b""
    return struct.pack("<HII", codes.shape[0], codes.shape[1], len(params)) + params + body, recon


def dpcm_decode(payload: bytes) -> np.ndarray:
    if len(payload) < 10:
        raise CorruptArchiveError("DPCM payload shorter than its header")
    n_ch, n, plen = struct.unpack_from("<HII", payload)
    check_declared_shape("nl-v1 residual", n_ch, n)
    orders, shifts, deltas, coefs = unpack_arrays(payload[10 : 10 + plen], 4)
    if orders.size != n_ch or shifts.size != n_ch or deltas.size != n_ch or int(orders.sum()) != coefs.size \
            or (shifts > 62).any() or (deltas < 0).any():
        raise CorruptArchiveError("DPCM parameters inconsistent with header")
    rows = residual_coder.decode_rows(payload[10 + plen :], np.full(n_ch, n, np.int64), SEGMENT, shaped=True) \
        if n_ch else []
    out = np.empty((n_ch, n), np.int64)
    ends = np.cumsum(orders.astype(np.int64))
    for c in range(n_ch):
        q = coefs[ends[c] - orders[c] : ends[c]]
        out[c] = _dpcm(np.empty(0, np.int64), rows[c], q, int(shifts[c]), int(deltas[c]), False)[1]
    return out


@register_codec
class NearLosslessCodec(Codec):
    """Integer codes → codes within ``deltas`` (per channel, in codes) of the originals."""

    codec_id = "nl-v1"
    config_fields = ("sketch", "deltas")
    lossy = True

    def __init__(self, sketch: dict, deltas):
        self.sketch_config = dict(sketch)
        self.sketch = AECodec(**{k: v for k, v in sketch.items() if k != "id"})
        self.deltas = [int(d) for d in deltas]
        if any(d < 0 for d in self.deltas) or len(self.deltas) != self.sketch.spatial.sigmas.size:
            raise ValueError("deltas: one non-negative integer per channel")

    def get_config(self) -> dict:
        return {"id": self.codec_id, "sketch": self.sketch.get_config(), "deltas": self.deltas}

    def stream(self, block: int) -> "NearLosslessStream":
        return NearLosslessStream(self, block)

    def encode(self, codes) -> bytes:
        codes = check_2d_int(codes)
        sketch = self.sketch.encode(codes.astype(np.float64))
        return self.finish_block(sketch, codes)

    def _approx(self, sketch: bytes) -> np.ndarray:
        approx = _rounded(self.sketch.decode(sketch))
        approx[np.asarray(self.deltas) == 0] = 0
        return approx

    def finish_block(self, sketch: bytes, codes: np.ndarray) -> bytes:
        margin = np.maximum(np.asarray(self.deltas) - 1, 0)  # room for x̂ rounded one code off elsewhere
        residual, _ = dpcm_encode(codes - self._approx(sketch), margin)
        return struct.pack("<II", len(sketch), len(residual)) + sketch + residual

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) < 8:
            raise CorruptArchiveError("nl-v1 payload shorter than its header")
        n_sketch, n_res = struct.unpack_from("<II", payload)
        if 8 + n_sketch + n_res != len(payload):
            raise CorruptArchiveError("nl-v1 payload sizes do not add up")
        approx = self._approx(payload[8 : 8 + n_sketch])
        residual = dpcm_decode(payload[8 + n_sketch :])
        if residual.shape != approx.shape:
            raise CorruptArchiveError("nl-v1 residual and sketch shapes differ")
        return approx + residual


def _rounded(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, -(2.0**40), 2.0**40)).astype(np.int64)


class NearLosslessStream:
    """The autoencoder's stream encoder, each finished block completed with its residual."""

    def __init__(self, codec: NearLosslessCodec, block: int):
        self.codec = codec
        self.inner = codec.sketch.stream(block)
        self._codes = np.zeros((len(codec.deltas), 0), np.int64)
        self._first = 0

    def push(self, codes: np.ndarray):
        self._codes = np.concatenate([self._codes, codes], axis=1)
        return self._complete(self.inner.push(codes.astype(np.float64)))

    def finish(self):
        return self._complete(self.inner.finish())

    def _complete(self, blocks):
        out = []
        for t0, t1, sketch in blocks:
            part = self._codes[:, t0 - self._first : t1 - self._first]
            out.append((t0, t1, self.codec.finish_block(sketch, part)))
            self._codes = self._codes[:, t1 - self._first :]
            self._first = t1
        return out
