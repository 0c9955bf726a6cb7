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
from . import adaptive_coder, analysis, cross_channel, cross_stage, parcor, prediction

KEY_BLOCK = 0  # block types; 1 (continuation of the previous block's state) is reserved
_HEADER = struct.Struct("<BBHII")  # block type, reserved, n_ch, n, params stream bytes
N_FRAME_PARAMS = 8  # per channel and frame: p1, kind1, p2, kind2, stage 3 (0), 3 reference slots
N_REF_SLOTS = 3
LINEAR, PALETTE = 0, 1  # channel modes: x = y·step + offset, or x = palette[y + offset]
_ALL = {"reflection": True, "alternatives": True, "palette": True, "always": False}
LEVELS = {
    # encoder choices only: every level writes the same bitstream
    "fast": {"order1": 16, "refs": 2, "irls": 0, "order2": 0, "static_span": 0, "lpc_irls": 0, **_ALL},
    "default": {"order1": 32, "refs": 3, "irls": 1, "order2": 32, "static_span": 1, "lpc_irls": 0, **_ALL},
    "max": {"order1": 32, "refs": 3, "irls": 2, "order2": 32, "static_span": 3, "lpc_irls": 3, **_ALL,
            "always": True},
}
PARAM_SEGMENT = 64
PALETTE_SPARSITY = 16
MAX_CODE = 1 << 47  # codes of every integer format (≤ 32 bits) and then some


def channel_palette(x: np.ndarray) -> np.ndarray | None:
    """The sorted values of a step-like channel worth coding as indices, else None.

    Channels whose samples repeat (a quarter of their first differences are 0) and take
    few values spread sparsely over their common step (≤ 1/16 of the grid between their
    extremes: accelerometer axes, status lines, codes rounded from a non-integer grid) code
    far cheaper as indices into their values. Denser channels (a signal with zero padding)
    keep their amplitudes, which prediction needs.
    """
    n = x.size
    if n < 64 or np.count_nonzero(np.diff(x)) > 0.75 * (n - 1):
        return None
    values = np.unique(x)
    if values.size < 2 or values.size > n // 4:
        return None
    step = int(np.gcd.reduce(values - values[0]))
    if (int(values[-1]) - int(values[0])) // step + 1 < PALETTE_SPARSITY * values.size:
        return None
    return values


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
        modes = np.zeros(n_ch, np.int64)
        offsets = np.zeros(n_ch, np.int64)
        steps = np.ones(n_ch, np.int64)
        palettes = []
        y = np.empty((n_ch, n), np.int64)
        for c in range(n_ch):
            values = channel_palette(codes[c]) if opts["palette"] else None
            if values is None:
                offsets[c], steps[c] = analysis.offset_and_step(codes[c], y[c])
            else:
                modes[c] = PALETTE
                offsets[c] = values.size // 2
                y[c] = np.searchsorted(values, codes[c]) - offsets[c]
                palettes.append(values)
        stage1 = analysis.analyse(y, F, opts["order1"], True, opts["reflection"], opts["alternatives"],
                                  opts["lpc_irls"], opts["always"])
        r = stage1[0]
        n_xc = min(n_ch, cross_channel.NO_REF)  # reference ids are bytes
        e = r.copy()
        refs = np.full((n_ch, n_frames, N_REF_SLOTS), cross_channel.NO_REF, np.int64)
        taps = np.zeros((n_ch, n_frames, N_REF_SLOTS * len(cross_channel.LAGS)), np.int64)
        if opts["refs"] and n_xc > 1:
            k = opts["refs"]
            e[:n_xc], refs[:n_xc, :, :k], taps[:n_xc, :, : 3 * k] = cross_stage.choose(r[:n_xc], F, k, opts["irls"])
        stage2 = analysis.analyse(e, F, opts["order2"], False, opts["reflection"], opts["alternatives"],
                                  opts["lpc_irls"], opts["always"])
        head = [modes, offsets, steps - 1, np.array([v.size for v in palettes], np.int64),
                np.concatenate([np.diff(v, prepend=0) for v in palettes] + [np.zeros(0, np.int64)])]
        return self._assemble(n, head, stage1, stage2, refs, taps)

    def _assemble(self, n, head, stage1, stage2, refs, taps) -> bytes:
        _, v1, p1, k1, _, _ = stage1
        d, v2, p2, k2, _, _ = stage2
        F, n_ch = self.frame, d.shape[0]
        n_frames = p1.shape[1]
        frame_params = np.zeros((n_frames, n_ch, N_FRAME_PARAMS), np.int64)
        frame_params[:, :, 0], frame_params[:, :, 1] = p1.T, k1.T
        frame_params[:, :, 2], frame_params[:, :, 3] = p2.T, k2.T
        used = refs != cross_channel.NO_REF
        chan = np.arange(n_ch).reshape(n_ch, 1, 1)
        frame_params[:, :, 5:] = np.transpose(np.where(used, chan - refs, 0), (1, 0, 2))
        n_taps = used.sum(axis=2) * len(cross_channel.LAGS)
        streams = []
        for f in range(n_frames):
            a, b = f * F, min(n, (f + 1) * F)
            tap_row = np.concatenate([taps[c, f, : n_taps[c, f]] for c in range(n_ch)] + [np.zeros(0, np.int64)])
            rows = [parcor.value_row(v1[:, f], p1[:, f], k1[:, f]), parcor.value_row(v2[:, f], p2[:, f], k2[:, f]),
                    tap_row] + [d[c, a:b] for c in range(n_ch)]
            streams.append(adaptive_coder.encode_rows(rows, self.segment, LEVELS[self.level]["static_span"]))
        params = adaptive_coder.encode_rows(
            head + [frame_params.ravel(), np.array([len(s) for s in streams], np.int64)], PARAM_SEGMENT)
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
        params = payload[_HEADER.size : _HEADER.size + plen]
        modes = adaptive_coder.decode_rows(params, [n_ch], PARAM_SEGMENT, exact=False)[0]
        if ((modes != LINEAR) & (modes != PALETTE)).any():
            raise CorruptArchiveError("lpc-v4 channel mode out of range")
        n_pal = int((modes == PALETTE).sum())
        sizes = adaptive_coder.decode_rows(params, [n_ch, n_ch, n_ch, n_pal], PARAM_SEGMENT, exact=False)[3]
        if ((sizes < 2) | (sizes > max(n, 2))).any():
            raise CorruptArchiveError("lpc-v4 palette sizes out of range")
        F = self.frame
        n_frames = -(-n // F)
        lengths = np.array([n_ch, n_ch, n_ch, n_pal, int(sizes.sum()), n_frames * n_ch * N_FRAME_PARAMS, n_frames],
                           np.int64)
        modes, offsets, steps, sizes, pal_flat, fp, stream_sizes = adaptive_coder.decode_rows(params, lengths,
                                                                                              PARAM_SEGMENT)
        steps = steps + 1
        fp = fp.reshape(n_frames, n_ch, N_FRAME_PARAMS)
        slots = fp[:, :, 5:]
        chan = np.arange(n_ch).reshape(1, n_ch, 1)
        orders, kinds = fp[:, :, [0, 2]], fp[:, :, [1, 3]]
        if ((steps < 1).any() or (orders < 0).any() or (orders > parcor.MAX_ORDER).any()
                or (kinds < 0).any() or (kinds > parcor.MAX_CODE).any() or (fp[:, :, 4] != 0).any()
                or (slots < 0).any() or (slots > chan).any() or ((modes == PALETTE) & (steps != 1)).any()
                or (stream_sizes < 0).any() or int(stream_sizes.sum()) != len(payload) - _HEADER.size - plen):
            raise CorruptArchiveError("lpc-v4 parameters inconsistent with the header")
        used = slots > 0
        refs = np.where(used, chan - slots, cross_channel.NO_REF)
        later = used[:, :, 1:]  # a used slot follows a used slot with a smaller reference
        if ((refs >= cross_channel.NO_REF) & used).any() or \
                (later & (~used[:, :, :-1] | (refs[:, :, 1:] <= refs[:, :, :-1]))).any():
            raise CorruptArchiveError("lpc-v4 cross-channel references out of order")
        palettes = {}
        pos = 0
        for c, size in zip(np.flatnonzero(modes == PALETTE), sizes.tolist()):
            palettes[int(c)] = np.cumsum(pal_flat[pos : pos + size])
            pos += size
        return dict(n_ch=n_ch, n=n, n_frames=n_frames, modes=modes, offsets=offsets, steps=steps, palettes=palettes,
                    p1=fp[:, :, 0].T.copy(), k1=fp[:, :, 1].T.copy(), p2=fp[:, :, 2].T.copy(), k2=fp[:, :, 3].T.copy(),
                    refs=np.transpose(refs, (1, 0, 2)).copy(), sizes=stream_sizes, body=_HEADER.size + plen)

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
        flat_k, starts_k = parcor.all_kappa_tables()
        coefs = np.zeros((2, n_ch, n_dec, prediction.TAPS), np.int64)
        shifts = np.zeros((2, n_ch, n_dec), np.int64)
        d = np.zeros((n_ch, length), np.int64)
        tap_rows = []
        for f, flat in enumerate(results):
            a, b = f * F, min(length, (f + 1) * F)
            pos = 0
            for s, (orders, kinds) in enumerate(((h["p1"], h["k1"]), (h["p2"], h["k2"]))):
                size = int(orders[:, f].sum())
                status = parcor.frame_coefficients(flat[pos : pos + size], orders[:, f].copy(), kinds[:, f].copy(),
                                                   flat_k, starts_k, coefs[s, :, f], shifts[s, :, f])
                if status:
                    raise CorruptArchiveError(f"lpc-v4 predictor values are invalid (code {status})")
                pos += size
            taps = int((h["refs"][:, f, :] != cross_channel.NO_REF).sum()) * len(cross_channel.LAGS)
            tap_rows.append(flat[pos : pos + taps])
            d[:, a:b] = flat[pos + taps :].reshape(n_ch, b - a)
        e = np.zeros_like(d)
        prediction.synthesize_rows(d, coefs[1], h["p2"][:, :n_dec].copy(), shifts[1], F, np.asarray(closure, np.int64), e)
        wanted_mask = np.zeros(n_ch, np.bool_)
        wanted_mask[list(closure)] = True
        n_taps = np.array([r.size for r in tap_rows], np.int64)
        tap_flat = np.concatenate(tap_rows + [np.zeros(0, np.int64)])
        if cross_stage.restore_frames(e, h["refs"][:, :n_dec, :], tap_flat, n_taps, F, length, wanted_mask):
            raise CorruptArchiveError("lpc-v4 cross-channel taps do not match their references")
        y = d  # d is spent: the stage-1 synthesis writes over it
        prediction.synthesize_rows(e, coefs[0], h["p1"][:, :n_dec].copy(), shifts[0], F, np.asarray(wanted, np.int64), y)
        out = np.zeros((n_ch, length), np.int64)
        for c in wanted:
            if h["modes"][c] == PALETTE:
                values = h["palettes"][c]
                idx = y[c] + h["offsets"][c]
                if idx.size and (idx.min() < 0 or idx.max() >= values.size):
                    raise CorruptArchiveError("lpc-v4 palette index out of range")
                out[c] = values[idx]
            else:
                out[c] = y[c] * h["steps"][c] + h["offsets"][c]
        return out
