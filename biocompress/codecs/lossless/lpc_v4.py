"""lpc-v4: two prediction stages around the cross-channel stage, PARCOR predictors, and the
adaptive rANS residual coder; one bitstream, three encoder levels (``fast``, ``default``, ``max``).

Per channel group block (n_ch × n int64 codes), per channel ``x = y·step + offset``, then

    stage 1   r = y − P1(y)        per-channel LPC, one predictor per frame (history crosses frames)
    cross     e = r − X(r_refs)    each channel's r predicted from ≤ 3 earlier channels' r (lags −1, 0, +1)
    stage 2   d = e − P2(e)        a second per-channel LPC: what is left after the cross-channel
                                   stage is coloured again (the shared part had its own spectrum)

and ``d`` goes to :mod:`adaptive_coder`. Predictors travel as quantized reflection
coefficients (:mod:`parcor`). Each frame is its own residual stream, so a reader decodes only
the frames it needs (the syntheses then run from the block start, as in lpc-v3).
The byte layout is docs/FORMAT.md §8.9.
"""

from __future__ import annotations

import struct

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_2d_int, check_declared_shape, register_codec
from . import adaptive_coder, cross_channel, lpc, parcor
from .lpc_codec import remove_offset_and_step

KEY_BLOCK = 0  # block types; 1 (continuation of the previous block's state) is reserved
_HEADER = struct.Struct("<BBHII")  # block type, reserved, n_ch, n, params stream bytes
N_FRAME_PARAMS = 8  # per channel and frame: p1, res1−4, p2, res2−4, stage 3 (0), 3 reference slots
N_REF_SLOTS = 3
LEVELS = {
    # encoder choices only: every level writes the same bitstream
    "fast": {"order1": 16, "refs": 2, "order2": 0},
    "default": {"order1": 32, "refs": 3, "order2": 32},
    "max": {"order1": 32, "refs": 3, "order2": 32},
}
PARAM_SEGMENT = 64
MAX_CODE = 1 << 47  # codes of every integer format (≤ 32 bits) and then some  # segment length of the parameter and index rows


_HEADROOM = 1 << 62
NO_PREDICTOR = (np.zeros(0, np.int64), parcor.MIN_RES)


def _predict_frames(y: np.ndarray, frame: int, max_order: int):
    """Per-frame PARCOR predictors of one row and its residual: (list of (idx, res), residual).

    A predictor whose sum could leave int64 ((Σ|q| + 1)·(max|y| + 1) ≥ 2^62 over the frame and
    its history) is replaced by none, so residuals stay within a few bits of the codes.
    """
    n = y.size
    choices, qs = [], []
    for a in range(0, n, frame):
        hist = min(a, parcor.MAX_ORDER)
        window = y[a - hist : a + frame]
        idx, res = parcor.choose_predictor(window, hist, max_order) if max_order else NO_PREDICTOR
        q = parcor.direct_coefficients(idx, res)
        peak = max(abs(int(window.max())), abs(int(window.min()))) if window.size else 0
        if (int(np.abs(q).sum()) + 1) * (peak + 1) >= _HEADROOM:  # Python ints: no overflow
            (idx, res), q = NO_PREDICTOR, np.zeros(0, np.int64)
        choices.append((idx, res))
        qs.append(q)
    q = np.concatenate(qs) if qs else np.zeros(0, np.int64)
    orders = np.array([c[0].size for c in choices], np.int64)
    shifts = np.full(orders.size, parcor.Q_BITS, np.int64)
    return choices, lpc.lpc_residual(y, q, orders, shifts, frame)


def _index_row(choices_f: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """One frame's reflection indices of every channel, coefficient-major; each index minus the
    previous channel's index at the same position when both exist with the same resolution."""
    out = []
    longest = max((c[0].size for c in choices_f), default=0)
    for i in range(longest):
        prev = None
        for idx, res in choices_f:
            if i < idx.size:
                ref = prev[0][i] if prev is not None and i < prev[0].size and prev[1] == res else 0
                out.append(int(idx[i]) - int(ref))
            prev = (idx, res)
    return np.asarray(out, np.int64)


def _indices_from_row(row: np.ndarray, orders: np.ndarray, res: np.ndarray) -> list[np.ndarray]:
    """Inverse of :func:`_index_row` for one frame (orders and resolutions per channel)."""
    out = [np.zeros(int(p), np.int64) for p in orders]
    k = 0
    for i in range(int(orders.max(initial=0))):
        for c in range(orders.size):
            if i < orders[c]:
                prev_ok = c > 0 and i < orders[c - 1] and res[c - 1] == res[c]
                out[c][i] = row[k] + (out[c - 1][i] if prev_ok else 0)
                k += 1
    return out


@register_codec
class LPCV4Codec(Codec):
    """Two-stage PARCOR prediction around the cross-channel stage, adaptive rANS coding.

    Parameters
    ----------
    level : {"fast", "default", "max"}
        Encoder effort (orders, references, searches); any level's blocks decode the same way.
    frame : int
        Samples per frame: each frame has its own predictors, references and residual stream.
    segment : int
        Samples per residual segment (one shape, or "all zero", per segment).
    """

    codec_id = "lpc-v4"
    config_fields = ("level", "frame", "segment")

    def __init__(self, level: str = "default", frame: int = 4096, segment: int = 1024):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {sorted(LEVELS)}, got {level!r}")
        if not 256 <= frame <= 1 << 20:
            raise ValueError(f"frame must be within 256..2**20, got {frame}")
        if not 16 <= segment <= 65536:
            raise ValueError(f"segment must be within 16..65536, got {segment}")
        self.level, self.frame, self.segment = level, int(frame), int(segment)

    # ------------------------------------------------------------------ encoder

    def encode(self, codes) -> bytes:
        codes = check_2d_int(codes)
        n_ch, n = codes.shape
        if codes.size and max(abs(int(codes.max())), abs(int(codes.min()))) >= MAX_CODE:
            raise ValueError(f"lpc-v4 codes must lie within ±2**47, got [{codes.min()}, {codes.max()}]")
        if n_ch > 0xFFFF or n > 0xFFFFFFFF:
            raise ValueError(f"lpc-v4 blocks hold at most 65535 channels × 2**32−1 samples, got {codes.shape}")
        opts = LEVELS[self.level]
        F = self.frame
        n_frames = -(-n // F)
        offsets = np.zeros(n_ch, np.int64)
        steps = np.ones(n_ch, np.int64)
        y = np.empty((n_ch, n), np.int64)
        for c in range(n_ch):
            offsets[c], steps[c], y[c] = remove_offset_and_step(codes[c])
        stage1, r = [], np.empty_like(y)
        for c in range(n_ch):
            ch, r[c] = _predict_frames(y[c], F, opts["order1"])
            stage1.append(ch)
        n_xc = min(n_ch, cross_channel.NO_REF)  # reference ids are bytes
        e = r.copy()
        refs = np.full((n_ch, n_frames, N_REF_SLOTS), cross_channel.NO_REF, np.uint8)
        xflat = np.zeros(0, np.int64)
        if opts["refs"] and n_xc > 1:
            e[:n_xc], refs_x, xflat = cross_channel.choose(r[:n_xc], F, opts["refs"], framed=True)
            refs[:n_xc, :, : opts["refs"]] = refs_x
        stage2, d = [], np.empty_like(y)
        for c in range(n_ch):
            ch, d[c] = _predict_frames(e[c], F, opts["order2"])
            stage2.append(ch)
        return self._assemble(n_ch, n, offsets, steps, stage1, stage2, refs, xflat, d)

    def _assemble(self, n_ch, n, offsets, steps, stage1, stage2, refs, xflat, d) -> bytes:
        F = self.frame
        n_frames = -(-n // F)
        taps = (refs != cross_channel.NO_REF).sum(axis=2) * len(cross_channel.LAGS)  # (n_ch, n_frames)
        x_end = np.cumsum(taps.ravel()).reshape(taps.shape) if taps.size else taps
        frame_params = np.zeros((n_frames, n_ch, N_FRAME_PARAMS), np.int64)
        streams = []
        for f in range(n_frames):
            a, b = f * F, min(n, (f + 1) * F)
            s1 = [stage1[c][f] for c in range(n_ch)]
            s2 = [stage2[c][f] for c in range(n_ch)]
            for c in range(n_ch):
                used = [int(j) for j in refs[c, f] if j != cross_channel.NO_REF]
                frame_params[f, c, :5] = (s1[c][0].size, s1[c][1] - 4, s2[c][0].size, s2[c][1] - 4, 0)
                frame_params[f, c, 5 : 5 + len(used)] = [c - j for j in used]
            tap_row = np.concatenate([xflat[x_end[c, f] - taps[c, f] : x_end[c, f]] for c in range(n_ch)]
                                     + [np.zeros(0, np.int64)])
            rows = [_index_row(s1), _index_row(s2), tap_row] + [d[c, a:b] for c in range(n_ch)]
            streams.append(adaptive_coder.encode_rows(rows, self.segment))
        params = adaptive_coder.encode_rows(
            [offsets, steps - 1, frame_params.ravel(), np.array([len(s) for s in streams], np.int64)],
            PARAM_SEGMENT)
        return _HEADER.pack(KEY_BLOCK, 0, n_ch, n, len(params)) + params + b"".join(streams)

    # ------------------------------------------------------------------ decoder

    def _read_header(self, payload: bytes):
        """Checked block header and parameters: a dict of everything but the frame streams."""
        if len(payload) < _HEADER.size:
            raise CorruptArchiveError("lpc-v4 payload shorter than its header")
        block_type, reserved, n_ch, n, plen = _HEADER.unpack_from(payload)
        if block_type != KEY_BLOCK or reserved != 0:
            raise CorruptArchiveError(f"lpc-v4 block type {block_type} is not supported by this reader")
        check_declared_shape(self.codec_id, n_ch, n)
        if _HEADER.size + plen > len(payload):
            raise CorruptArchiveError("lpc-v4 parameter stream truncated")
        F = self.frame
        n_frames = -(-n // F)
        lengths = np.array([n_ch, n_ch, n_frames * n_ch * N_FRAME_PARAMS, n_frames], np.int64)
        offsets, steps, fp, sizes = adaptive_coder.decode_rows(
            payload[_HEADER.size : _HEADER.size + plen], lengths, PARAM_SEGMENT)
        steps = steps + 1
        fp = fp.reshape(n_frames, n_ch, N_FRAME_PARAMS)
        slots = fp[:, :, 5:]
        chan = np.arange(n_ch).reshape(1, n_ch, 1)
        if ((steps < 1).any() or (fp[:, :, 0] < 0).any() or (fp[:, :, 0] > parcor.MAX_ORDER).any()
                or (fp[:, :, 2] < 0).any() or (fp[:, :, 2] > parcor.MAX_ORDER).any()
                or (fp[:, :, [1, 3]] < 0).any() or (fp[:, :, [1, 3]] > parcor.MAX_RES - 4).any()
                or (fp[:, :, 4] != 0).any() or (slots < 0).any() or (slots > chan).any()
                or (sizes < 0).any() or int(sizes.sum()) != len(payload) - _HEADER.size - plen):
            raise CorruptArchiveError("lpc-v4 parameters inconsistent with the header")
        used = slots > 0
        refs = np.where(used, chan - slots, cross_channel.NO_REF)
        later = used[:, :, 1:]  # a used slot follows a used slot with a smaller reference
        if ((refs >= cross_channel.NO_REF) & used).any() or \
                (later & (~used[:, :, :-1] | (refs[:, :, 1:] <= refs[:, :, :-1]))).any():
            raise CorruptArchiveError("lpc-v4 cross-channel references out of order")
        return dict(n_ch=n_ch, n=n, n_frames=n_frames, offsets=offsets, steps=steps,
                    p1=fp[:, :, 0].T.copy(), res1=fp[:, :, 1].T + 4, p2=fp[:, :, 2].T.copy(), res2=fp[:, :, 3].T + 4,
                    refs=np.transpose(refs, (1, 0, 2)).copy(), sizes=sizes, body=_HEADER.size + plen)

    def decode(self, payload: bytes) -> np.ndarray:
        return self.decode_prefix(payload)

    def decode_prefix(self, payload: bytes, stop: int | None = None, channels=None) -> np.ndarray:
        """Codes of samples [0, ≥ stop) of the block (whole frames); rows not in ``channels``
        are left zero. Only the frames needed are decoded, and synthesised only for the
        channels asked for and their references."""
        parts, join = self.split_decode(payload, stop, channels)
        return join([self.decode_part(part) for part in parts])

    def split_decode(self, payload: bytes, stop: int | None = None, channels=None):
        """One part per frame (its residual stream decoded); ``join`` runs the three syntheses."""
        h = self._read_header(payload)
        n_ch, n, F = h["n_ch"], h["n"], self.frame
        need = n if stop is None else max(0, min(n, int(stop)))
        n_dec = -(-need // F) if need else 0
        length = min(n, n_dec * F)
        wanted = tuple(range(n_ch)) if channels is None else tuple(sorted({int(c) for c in channels if 0 <= int(c) < n_ch}))
        closure = tuple(range(n_ch)) if channels is None else \
            tuple(sorted(cross_channel.reference_closure(wanted, h["refs"][:, :n_dec, :])))
        parts, pos = [], h["body"]
        for f in range(n_dec):
            a, b = f * F, min(n, (f + 1) * F)
            taps = int((h["refs"][:, f, :] != cross_channel.NO_REF).sum()) * len(cross_channel.LAGS)
            lengths = np.array([h["p1"][:, f].sum(), h["p2"][:, f].sum(), taps] + [b - a] * n_ch, np.int64)
            size = int(h["sizes"][f])
            parts.append((payload[pos : pos + size], lengths, self.segment))
            pos += size

        def join(results) -> np.ndarray:
            return self._synthesize(h, results, n_dec, length, wanted, closure)

        return parts, join

    def decode_part(self, part):
        stream, lengths, segment = part
        return adaptive_coder.decode_flat(stream, lengths, segment)

    def _synthesize(self, h, results, n_dec, length, wanted, closure) -> np.ndarray:
        n_ch, F = h["n_ch"], self.frame
        q1 = [[] for _ in range(n_ch)]
        q2 = [[] for _ in range(n_ch)]
        d = np.zeros((n_ch, length), np.int64)
        tap_rows = []
        for f, flat in enumerate(results):
            a, b = f * F, min(length, (f + 1) * F)
            l1, l2 = int(h["p1"][:, f].sum()), int(h["p2"][:, f].sum())
            taps = int((h["refs"][:, f, :] != cross_channel.NO_REF).sum()) * len(cross_channel.LAGS)
            i1 = _indices_from_row(flat[:l1], h["p1"][:, f], h["res1"][:, f])
            i2 = _indices_from_row(flat[l1 : l1 + l2], h["p2"][:, f], h["res2"][:, f])
            for c in closure:
                q1[c].append(parcor.direct_coefficients(i1[c], int(h["res1"][c, f])))
                q2[c].append(parcor.direct_coefficients(i2[c], int(h["res2"][c, f])))
            tap_rows.append(flat[l1 + l2 : l1 + l2 + taps])
            d[:, a:b] = flat[l1 + l2 + taps :].reshape(n_ch, b - a)
        shifts = np.full(n_dec, parcor.Q_BITS, np.int64)
        e = np.zeros_like(d)
        for c in closure:
            e[c] = lpc.lpc_restore(d[c], np.concatenate(q2[c] + [np.zeros(0, np.int64)]), h["p2"][c, :n_dec], shifts, F)
        only = None if len(closure) == n_ch else set(closure)
        for f in range(n_dec):
            a, b = f * F, min(length, (f + 1) * F)
            try:
                cross_channel.restore_frame(e, h["refs"][:, f, :].astype(np.int64), tap_rows[f], a, b, only)
            except ValueError as exc:
                raise CorruptArchiveError(f"lpc-v4: {exc}") from exc
        out = np.zeros((n_ch, length), np.int64)
        for c in wanted:
            y = lpc.lpc_restore(e[c], np.concatenate(q1[c] + [np.zeros(0, np.int64)]), h["p1"][c, :n_dec], shifts, F)
            out[c] = y * h["steps"][c] + h["offsets"][c]
        return out
