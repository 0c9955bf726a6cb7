"""Lossless codecs: least-squares LPC per channel (+ a cross-channel stage in lpc-v2),
residuals range-coded by class."""

from __future__ import annotations

import struct

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_2d_int, check_declared_shape, register_codec
from ..bytepack import pack_arrays, unpack_arrays
from . import cross_channel, lpc, residual_coder

_HEADER = struct.Struct("<HI")  # n_channels, n_samples


def remove_offset_and_step(x: np.ndarray):
    """x = y·step + offset with y centred on 0 and step the largest common step of x.

    Formats often store values on a coarser grid than their integer type (unused
    low bits, gain-scaled codes); dividing the step out saves those bits.
    """
    if x.size == 0:
        return 0, 1, x
    step = int(np.gcd.reduce(np.abs(x - x[0]))) or 1
    y = (x - x[0]) // step
    centre = int(np.round(y.mean()))
    return int(x[0]) + centre * step, step, y - centre


def check_lpc_params(max_order, segment, frame) -> tuple[int, int, int]:
    """Checked (max_order, segment, frame) of the LPC-based codecs."""
    if max_order not in lpc.ORDERS:
        raise ValueError(f"max_order must be one of {lpc.ORDERS}, got {max_order}")
    if not 16 <= segment <= 65536:
        raise ValueError(f"segment must be within 16..65536, got {segment}")
    if not 256 <= frame <= 1 << 20:
        raise ValueError(f"frame must be within 256..2**20, got {frame}")
    return int(max_order), int(segment), int(frame)


@register_codec
class LPCCodec(Codec):
    """Per-channel least-squares LPC (order ≤ ``max_order``), residuals range-coded.

    A block's channels are coded independently; each channel is cut into frames
    of ``frame`` samples, each with its own predictor (history crosses frames, so
    only the block start needs a warm-up).

    Parameters
    ----------
    max_order : int
        Highest prediction order tried per channel block.
    segment : int
        Samples per residual segment sharing one Laplace scale class.
    """

    codec_id = "lpc-v1"
    config_fields = ("max_order", "segment", "frame")
    _SHAPED = False  # residual segments coded with Laplace tables only

    def __init__(self, max_order: int = lpc.MAX_ORDER, segment: int = 256, frame: int = 4096):
        self.max_order, self.segment, self.frame = check_lpc_params(max_order, segment, frame)

    def _predict(self, codes: np.ndarray):
        """Per-channel LPC: (orders, shifts, offsets, steps, coefficient rows, residuals)."""
        n_ch, n = codes.shape
        n_frames = -(-n // self.frame)
        orders = np.zeros((n_ch, n_frames), np.int64)
        shifts = np.zeros((n_ch, n_frames), np.int64)
        offsets, steps, coefs = [], [], []
        residuals = np.empty((n_ch, n), np.int64)
        for ch, x in enumerate(codes):
            offset, step, x = remove_offset_and_step(x)
            qs = []
            for f in range(n_frames):
                a = f * self.frame
                hist = min(a, lpc.MAX_ORDER)
                q, shift = lpc.choose_predictor(x[a - hist : a + self.frame], self.max_order, history=hist)
                qs.append(q)
                orders[ch, f], shifts[ch, f] = q.size, shift
            q = np.concatenate(qs) if qs else np.zeros(0, np.int64)
            residuals[ch] = lpc.lpc_residual(x, q, orders[ch], shifts[ch], self.frame)
            coefs.append(q)
            offsets.append(offset)
            steps.append(step)
        return orders, shifts, np.asarray(offsets, np.int64), np.asarray(steps, np.int64), coefs, residuals

    def _params(self, orders, shifts, offsets, steps, extra=()) -> bytes:
        return pack_arrays(orders.astype(np.uint8).ravel(), shifts.astype(np.uint8).ravel(), offsets, steps, *extra)

    def encode(self, codes) -> bytes:
        codes = check_2d_int(codes)
        n_ch, n = codes.shape
        orders, shifts, offsets, steps, coefs, residuals = self._predict(codes)
        params = self._params(orders, shifts, offsets, steps)
        return self._assemble(n_ch, n, params, coefs, residuals, orders)

    def _assemble(self, n_ch, n, params: bytes, coefs, residuals, orders, tail_rows=()) -> bytes:
        rows = []
        for ch in range(n_ch):
            p0 = int(orders[ch, 0]) if orders.shape[1] else 0
            # coefficients travel through the range coder too: a row of their own
            rows += [coefs[ch], residuals[ch, :p0], residuals[ch, p0:]]
        body = residual_coder.encode_rows(rows + list(tail_rows), self.segment, self._SHAPED)
        return _HEADER.pack(n_ch, n) + struct.pack("<I", len(params)) + params + body

    _N_PARAMS = 4

    def decode(self, payload: bytes) -> np.ndarray:
        n_ch, n, params, rows, orders, shifts = self._parse(payload)
        residuals = np.empty((n_ch, n), np.int64)
        for ch in range(n_ch):
            residuals[ch] = np.concatenate(rows[3 * ch + 1 : 3 * ch + 3])
        residuals = self._undo_cross(residuals, params, rows[3 * n_ch :])
        return self._synthesize(residuals, rows, orders, shifts, params[2], params[3])

    def _tail_lengths(self, params, n_ch: int, n_frames: int) -> list[int]:
        return []

    def _undo_cross(self, residuals, params, tail_rows):
        return residuals

    def _read_params(self, payload: bytes):
        """Header and checked parameter arrays: (n_ch, n, params, body start, orders, shifts)."""
        if len(payload) < _HEADER.size + 4:
            raise CorruptArchiveError(f"{self.codec_id} payload shorter than its header")
        n_ch, n = _HEADER.unpack_from(payload)
        check_declared_shape(self.codec_id, n_ch, n)
        (plen,) = struct.unpack_from("<I", payload, _HEADER.size)
        start = _HEADER.size + 4
        params = unpack_arrays(payload[start : start + plen], self._N_PARAMS)
        orders, shifts, offsets, steps = params[:4]
        n_frames = -(-n // self.frame)
        if (orders.size != n_ch * n_frames or shifts.size != orders.size or offsets.size != n_ch
                or steps.size != n_ch or (steps < 1).any() or (shifts > 62).any()):
            raise CorruptArchiveError(f"{self.codec_id} predictor parameters inconsistent with header")
        orders = orders.astype(np.int64).reshape(n_ch, n_frames)
        shifts = shifts.astype(np.int64).reshape(n_ch, n_frames)
        if n_frames and (orders[:, 0] > n).any():
            raise CorruptArchiveError(f"{self.codec_id} predictor order longer than the block")
        return n_ch, n, params, start + plen, orders, shifts

    def _parse(self, payload: bytes):
        n_ch, n, params, body, orders, shifts = self._read_params(payload)
        n_frames = orders.shape[1]
        p0 = orders[:, 0] if n_frames else np.zeros(n_ch, np.int64)
        lengths = list(np.ravel(np.column_stack([orders.sum(axis=1), p0, n - p0])))
        lengths += self._tail_lengths(params, n_ch, n_frames)
        rows = residual_coder.decode_rows(payload[body:], np.asarray(lengths, np.int64), self.segment, self._SHAPED)
        return n_ch, n, params, rows, orders, shifts

    def _synthesize(self, residuals, rows, orders, shifts, offsets, steps) -> np.ndarray:
        n_ch, n = residuals.shape
        out = np.empty((n_ch, n), np.int64)
        for ch in range(n_ch):
            y = lpc.lpc_restore(residuals[ch], rows[3 * ch], orders[ch], shifts[ch], self.frame)
            out[ch] = y * steps[ch] + offsets[ch]
        return out


@register_codec
class LPCXCodec(LPCCodec):
    """lpc-v1 plus a cross-channel stage: each channel's LPC residual is predicted,
    per frame, from up to ``refs`` earlier channels' residuals (lags −1, 0, +1).

    Channels should be ordered so that neighbours are related (as montages are);
    references are chosen by residual correlation per frame.
    """

    codec_id = "lpc-v2"
    config_fields = ("max_order", "segment", "frame", "refs")
    _N_PARAMS = 5

    def __init__(self, max_order: int = lpc.MAX_ORDER, segment: int = 256, frame: int = 4096, refs: int = 3):
        super().__init__(max_order, segment, frame)
        if not 0 <= refs <= 8:
            raise ValueError(f"refs must be within 0..8, got {refs}")
        self.refs = int(refs)

    def encode(self, codes) -> bytes:
        codes = check_2d_int(codes)
        n_ch, n = codes.shape
        orders, shifts, offsets, steps, coefs, residuals = self._predict(codes)
        errors, refs, xcoefs = cross_channel.choose(residuals, self.frame, self.refs)
        params = self._params(orders, shifts, offsets, steps, (refs.ravel(),))
        return self._assemble(n_ch, n, params, coefs, errors, orders, tail_rows=(xcoefs,))

    def _tail_lengths(self, params, n_ch, n_frames):
        refs = params[4]
        if refs.size != n_ch * n_frames * self.refs:
            raise CorruptArchiveError("lpc-v2 cross-channel references inconsistent with header")
        return [int((refs != cross_channel.NO_REF).sum()) * len(cross_channel.LAGS)]

    def _undo_cross(self, residuals, params, tail_rows):
        n_ch, n = residuals.shape
        refs = params[4].reshape(n_ch, -(-n // self.frame), self.refs)
        try:
            return cross_channel.restore(residuals, refs, tail_rows[0], self.frame)
        except ValueError as exc:
            raise CorruptArchiveError(f"lpc-v2: {exc}") from exc


@register_codec
class LPCX3Codec(LPCXCodec):
    """lpc-v2 with shaped residual coding and one range-coded stream per frame.

    Residual segments also choose a distribution shape (heavy-tailed to Gaussian),
    which fits prediction residuals better than Laplace alone. Each frame is its own
    stream and cross-channel references stay inside the frame, so a reader needing
    only the start of a block, or a few channels, decodes only that much.
    """

    codec_id = "lpc-v3"
    _SHAPED = True
    _N_PARAMS = 6

    def encode(self, codes) -> bytes:
        codes = check_2d_int(codes)
        n_ch, n = codes.shape
        orders, shifts, offsets, steps, coefs, residuals = self._predict(codes)
        errors, refs, xflat = cross_channel.choose(residuals, self.frame, self.refs, framed=True)
        n_frames = orders.shape[1]
        taps = (refs != cross_channel.NO_REF).sum(axis=2) * len(cross_channel.LAGS)  # (n_ch, n_frames)
        x_end = np.cumsum(taps.ravel()).reshape(taps.shape)  # xflat is channel-major
        q_end = np.cumsum(orders, axis=1)
        streams = []
        for f in range(n_frames):
            a, b = f * self.frame, min(n, (f + 1) * self.frame)
            rows = []
            for c in range(n_ch):
                rows.append(coefs[c][q_end[c, f] - orders[c, f] : q_end[c, f]])
                if f == 0:  # the block's warm-up samples get a row (and scale) of their own
                    rows += [errors[c, : orders[c, 0]], errors[c, orders[c, 0] : b]]
                else:
                    rows.append(errors[c, a:b])
            rows.append(np.concatenate([xflat[x_end[c, f] - taps[c, f] : x_end[c, f]] for c in range(n_ch)]
                                       + [np.zeros(0, np.int64)]))
            streams.append(residual_coder.encode_rows(rows, self.segment, shaped=True))
        params = self._params(orders, shifts, offsets, steps,
                              (refs.ravel(), np.array([len(x) for x in streams], np.uint32)))
        return _HEADER.pack(n_ch, n) + struct.pack("<I", len(params)) + params + b"".join(streams)

    def decode(self, payload: bytes) -> np.ndarray:
        return self.decode_prefix(payload)

    def decode_prefix(self, payload: bytes, stop: int | None = None, channels=None) -> np.ndarray:
        """Codes of samples [0, ≥ stop) of the block (whole frames); rows not in
        ``channels`` are left zero. Only the frames and channels needed are decoded."""
        parts, join = self.split_decode(payload, stop, channels)
        return join([self.decode_part(part) for part in parts])

    def split_decode(self, payload: bytes, stop: int | None = None, channels=None):
        """One part per frame: its stream decoded and cross-channel stage undone (both
        frame-local); ``join`` runs the LPC synthesis, which needs the frames in order."""
        n_ch, n, params, pos, orders, shifts = self._read_params(payload)
        offsets, steps, refs, sizes = params[2:]
        F = self.frame
        n_frames = orders.shape[1]
        if refs.size != n_ch * n_frames * self.refs or sizes.size != n_frames \
                or int(sizes.astype(np.int64).sum()) != len(payload) - pos:
            raise CorruptArchiveError("lpc-v3 cross-channel references or stream sizes inconsistent with header")
        refs = refs.reshape(n_ch, n_frames, self.refs)
        need = n if stop is None else max(0, min(n, int(stop)))
        n_dec = -(-need // F) if need else 0
        length = min(n, n_dec * F)
        wanted = tuple(range(n_ch)) if channels is None else tuple(sorted(set(int(c) for c in channels)))
        closure = (None if channels is None else
                   tuple(sorted(cross_channel.reference_closure(wanted, refs[:, :n_dec, :]))))
        parts = []
        for f in range(n_dec):
            a, b = f * F, min(n, (f + 1) * F)
            lengths = []
            for c in range(n_ch):
                lengths += [orders[c, f]] + ([orders[c, 0], b - orders[c, 0]] if f == 0 else [b - a])
            lengths.append(int((refs[:, f, :] != cross_channel.NO_REF).sum()) * len(cross_channel.LAGS))
            parts.append((payload[pos : pos + int(sizes[f])], np.asarray(lengths, np.int64), refs[:, f, :].copy(),
                          b - a, f == 0, closure, wanted))
            pos += int(sizes[f])

        def join(results) -> np.ndarray:
            out = np.zeros((n_ch, length), np.int64)
            for k, c in enumerate(wanted):
                q = np.concatenate([r[0][k] for r in results] + [np.zeros(0, np.int64)])
                res = np.concatenate([r[1][k] for r in results] + [np.zeros(0, np.int64)])
                y = lpc.lpc_restore(res, q, orders[c, :n_dec], shifts[c, :n_dec], F)
                out[c] = y * steps[c] + offsets[c]
            return out

        return parts, join

    def decode_part(self, part):
        """(coefficient rows, residual rows) of the wanted channels in one frame."""
        stream, lengths, refs_f, width, first, closure, wanted = part
        rows = residual_coder.decode_rows(stream, lengths, self.segment, shaped=True)
        n_ch = refs_f.shape[0]
        residuals = np.empty((n_ch, width), np.int64)
        q_rows, r = [], 0
        for c in range(n_ch):
            q_rows.append(rows[r])
            if first:
                residuals[c, : rows[r + 1].size] = rows[r + 1]
                residuals[c, rows[r + 1].size :] = rows[r + 2]
                r += 3
            else:
                residuals[c] = rows[r + 1]
                r += 2
        try:
            cross_channel.restore_frame(residuals, refs_f, rows[r], 0, width, None if closure is None else set(closure))
        except ValueError as exc:
            raise CorruptArchiveError(f"lpc-v3: {exc}") from exc
        return [q_rows[c] for c in wanted], residuals[list(wanted)]
