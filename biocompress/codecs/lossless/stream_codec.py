"""lpc-s1: a stateful lossless codec for live streams of short blocks.

A channel group's blocks form chains: a **key block** is self-contained (lattice, predictor
(PARCOR coefficients), cross-channel taps and entropy settings of every channel, then the
residuals; the first samples use the nested lower-order predictors); each **continuation
block** carries on from the previous block of its chain: the last samples of every channel
(prediction history), the last LPC residuals (cross-channel lag −1), the parameters, the
sign-sign LMS filters (a last prediction stage whose weights adapt every sample, on both
sides) and each channel's running mean |residual| (the entropy coder's scale). A
continuation block sends only the parameters that change (one flag per channel when none
do), so a block of 50 ms costs about two bytes more than its residuals.

The encoder (:class:`ChainEncoder`, from ``codec.encode_stream()``) re-fits parameters on
a sliding window every ``update_interval`` samples and sends them when the estimated
saving over the rest of the chain exceeds their cost; it starts a new chain (a key block)
once ``key_interval`` samples have passed since the last one, which bounds what a reader
decodes to reach any block and what a damaged block takes with it.

Decoding a continuation block needs the state its predecessor left:
``decode_with(payload, state) -> (codes, state)``; ``is_key(payload)`` says whether a
block starts a chain. ``merge_chain(payloads)`` joins a key block and its continuations
into one self-contained payload (a *chain block*), which ``decode`` reads like a key.
The bitstream is specified in docs/FORMAT.md §8.11.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import CorruptArchiveError
from ..base import (
    MAX_DECODED_ELEMENTS,
    Codec,
    check_2d_int,
    check_declared_shape,
    register_codec,
)
from . import stream_coding as sc
from . import stream_entropy as se
from . import stream_fit as fit
from . import stream_predict as sp
from .stream_predict import MAX_REFS, H

KEY, CONTINUATION, CHAIN = 0, 1, 2
_KIND_NAMES = {KEY: "key", CONTINUATION: "continuation", CHAIN: "chain"}
MAX_CHANNELS = 1 << 16
_CHANGE_BITS = 12.0  # flag, mask and field headers of one changed group (estimate)
_MARGIN_BITS = 8.0
CROSS_WINDOW, CROSS_RECENT = 1024, 256
ENTROPY_WINDOW, ENTROPY_EVERY = 512, 4  # entropy settings: re-fitted on every 4th refit, and at keys
DEFAULT_LMS = 6  # sign-sign LMS step 2**5 (weights have 14 fractional bits)


# --- header bytes ---------------------------------------------------------------------
def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    v = 0
    for i in range(5):
        if pos + i >= len(data):
            raise CorruptArchiveError("lpc-s1 block header truncated")
        b = data[pos + i]
        v |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if b == 0 and i:
                raise CorruptArchiveError("lpc-s1 block header has a padded number")
            return v, pos + i + 1
    raise CorruptArchiveError("lpc-s1 block header has an overlong number")


SAME_LENGTH = 4  # continuation: as many samples as the block before (no length field)
SEQ_SHIFT, SEQ_MOD = 3, 32  # continuation: block number since the key block, mod 32


def block_kind(payload: bytes) -> int:
    """KEY, CONTINUATION or CHAIN, from a block's first byte."""
    if not payload:
        raise CorruptArchiveError("lpc-s1 block is empty")
    kind = payload[0] & 3
    if kind not in _KIND_NAMES or (kind != CONTINUATION and payload[0] != kind):
        raise CorruptArchiveError(f"lpc-s1 block of unknown kind {payload[0]}")
    return kind


# --- what a chain carries from block to block ---------------------------------------------
@dataclass
class ChainState:
    """The state a block leaves for the next block of its chain (plain arrays; a decoder
    never changes a state it was given, so cached states can be shared)."""

    n_ch: int
    seq: int  # blocks since the key block, mod 32
    last_n: int  # samples of the last block
    since_key: int  # samples since the key block started
    x_hist: np.ndarray  # (n_ch, H) last codes, right-aligned
    r_last: np.ndarray  # (n_ch,) last LPC residual
    step: np.ndarray
    base: np.ndarray
    form: np.ndarray  # DIRECT or PARCOR
    order: np.ndarray
    precision: np.ndarray  # direct: shift; PARCOR: fractional bits of the coded values
    coef: np.ndarray  # (n_ch, H) coded coefficients
    centre: np.ndarray
    pq: np.ndarray  # (n_ch, H) derived direct-form predictor
    pshift: np.ndarray
    pc0: np.ndarray  # derived constant term
    nref: np.ndarray
    refs: np.ndarray  # (n_ch, MAX_REFS)
    taps: np.ndarray  # (n_ch, MAX_REFS, 3)
    bias: np.ndarray
    shape: np.ndarray
    rate: np.ndarray
    lms: np.ndarray  # sign-sign LMS step (log2 + 1; 0 = off)
    lms_w: np.ndarray  # (n_ch, LMS_TAPS) weights
    lms_h: np.ndarray  # (n_ch, LMS_TAPS) last cross-channel errors
    m: np.ndarray  # running mean |residual|, 4 fractional bits

    @classmethod
    def fresh(cls, n_ch: int) -> ChainState:
        z = lambda *s: np.zeros(s, np.int64)  # noqa: E731
        full = lambda v: np.full(n_ch, v, np.int64)  # noqa: E731
        return cls(n_ch, 0, 0, 0, z(n_ch, H), z(n_ch), full(1), z(n_ch), z(n_ch), z(n_ch), z(n_ch), z(n_ch, H), z(n_ch),
                   z(n_ch, H), z(n_ch), z(n_ch), z(n_ch), z(n_ch, MAX_REFS), z(n_ch, MAX_REFS, 3), full(1), full(2),
                   full(4), full(DEFAULT_LMS), z(n_ch, sp.LMS_TAPS), z(n_ch, sp.LMS_TAPS), z(n_ch))

    def copy(self) -> ChainState:
        new = object.__new__(ChainState)
        new.__dict__ = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        return new

    def derive(self, which: np.ndarray) -> None:
        """Rebuild the integer predictors of channels ``which`` from their parameters."""
        if len(which):
            sp.derive(self.form, self.order, self.precision, self.coef, self.centre, np.asarray(which, np.int64),
                      self.pq, self.pshift, self.pc0)

    def lattice_history(self) -> np.ndarray:
        """The history in lattice units, y = (x − base) / step."""
        return (self.x_hist - self.base[:, None]) // self.step[:, None]

    def advance(self, x: np.ndarray, r: np.ndarray) -> None:
        n = x.shape[1]
        if n >= H:
            self.x_hist = np.ascontiguousarray(x[:, n - H :])
        elif n:
            self.x_hist = np.concatenate([self.x_hist[:, n:], x], axis=1)
        if n:
            self.r_last = r[:, -1].copy()
        self.since_key += n
        self.seq = (self.seq + 1) % SEQ_MOD
        self.last_n = n


# --- the codec ----------------------------------------------------------------------------
@register_codec
class LPCStreamCodec(Codec):
    """Stateful LPC for live streams: key blocks and continuation blocks (see module doc).

    Parameters (encoder only: any lpc-s1 decoder reads any lpc-s1 block)
    ----------
    max_order : int
        Highest LPC order the encoder uses.
    refs : int
        Most cross-channel references per channel (0…7).
    key_interval : int
        Samples between key blocks (a chain is at least this long).
    update_interval : int
        Samples between parameter re-fits.
    window : int
        Samples of history the fits look at.
    """

    codec_id = "lpc-s1"
    config_fields = ("max_order", "refs", "key_interval", "update_interval", "window")
    stateful = True

    def __init__(self, max_order: int = 32, refs: int = 3, key_interval: int = 4096, update_interval: int = 1024,
                 window: int = 2048):
        if max_order not in fit.lpc.ORDERS:
            raise ValueError(f"max_order must be one of {fit.lpc.ORDERS}, got {max_order}")
        if not 0 <= refs <= MAX_REFS:
            raise ValueError(f"refs must be within 0..{MAX_REFS}, got {refs}")
        if not 1 <= key_interval <= 1 << 30 or not 1 <= update_interval <= 1 << 30:
            raise ValueError("key_interval and update_interval must be within 1..2**30")
        if not 128 <= window <= 1 << 20:
            raise ValueError(f"window must be within 128..2**20, got {window}")
        self.max_order, self.refs = int(max_order), int(refs)
        self.key_interval, self.update_interval, self.window = int(key_interval), int(update_interval), int(window)

    # -- encoding --
    def encode_stream(self) -> ChainEncoder:
        return ChainEncoder(self)

    def encode(self, codes) -> bytes:
        """A self-contained payload: the codes as one chain (a chain block)."""
        codes = check_2d_int(codes)
        enc = ChainEncoder(self, key_interval=max(codes.shape[1], 1))
        step = min(self.update_interval, 4096)
        pieces = [enc.encode(codes[:, a : a + step]) for a in range(0, max(codes.shape[1], 1), step)]
        return merge_chain(pieces)

    # -- decoding --
    def is_key(self, payload: bytes) -> bool:
        return block_kind(payload) != CONTINUATION

    def decode(self, payload: bytes) -> np.ndarray:
        if block_kind(payload) == CONTINUATION:
            raise CorruptArchiveError("lpc-s1 continuation block decoded without the blocks before it")
        return self.decode_with(payload, None)[0]

    def decode_with(self, payload: bytes, state: ChainState | None):
        """(codes, state after this block); ``state``: what the previous block of the chain
        left (ignored by key and chain blocks)."""
        kind = block_kind(payload)
        if kind == CHAIN:
            return _decode_chain(payload)
        return _decode_block(payload, state)


def merge_chain(payloads: list[bytes]) -> bytes:
    """One self-contained payload from a key block and the continuation blocks after it."""
    if not payloads or block_kind(payloads[0]) != KEY or any(block_kind(p) != CONTINUATION for p in payloads[1:]):
        raise ValueError("a chain is one key block followed by its continuation blocks")
    return bytes([CHAIN]) + _varint(len(payloads)) + b"".join(_varint(len(p)) + p for p in payloads)


def declared_shape(payload: bytes) -> tuple[int, int] | None:
    """(channels, samples) a key or chain block's headers declare; None for a continuation
    block (its channels are its chain's) or headers that cannot be read."""
    try:
        kind = block_kind(payload)
        if kind == KEY:
            n_ch, pos = _read_varint(payload, 1)
            return n_ch, _read_varint(payload, pos)[0]
        if kind == CHAIN:
            count, pos = _read_varint(payload, 1)
            n_ch, total, last = None, 0, 0
            for i in range(count):
                size, pos = _read_varint(payload, pos)
                sub = payload[pos : pos + size]
                pos += size
                if i == 0:
                    n_ch, last = declared_shape(sub) or (None, 0)
                    if n_ch is None:
                        return None
                else:
                    if block_kind(sub) != CONTINUATION:
                        return None
                    last = last if sub[0] & SAME_LENGTH else _read_varint(sub, 1)[0]
                total += last
            return n_ch, total
    except CorruptArchiveError:
        return None
    return None


def _decode_chain(payload: bytes):
    count, pos = _read_varint(payload, 1)
    if count < 1:
        raise CorruptArchiveError("lpc-s1 chain block holds no blocks")
    parts, state, total = [], None, 0
    for i in range(count):
        size, pos = _read_varint(payload, pos)
        if pos + size > len(payload):
            raise CorruptArchiveError("lpc-s1 chain block truncated")
        sub = payload[pos : pos + size]
        pos += size
        if block_kind(sub) != (KEY if i == 0 else CONTINUATION):
            raise CorruptArchiveError("lpc-s1 chain block does not start with its key block")
        codes, state = _decode_block(sub, state)
        total += codes.size
        if total > MAX_DECODED_ELEMENTS:
            raise CorruptArchiveError("lpc-s1 chain block holds more samples than a block can")
        parts.append(codes)
    if pos != len(payload):
        raise CorruptArchiveError("lpc-s1 chain block has trailing bytes")
    return np.concatenate(parts, axis=1), state


def _decode_block(payload: bytes, state: ChainState | None):
    kind = block_kind(payload)
    if kind == KEY:
        n_ch, pos = _read_varint(payload, 1)
        n, pos = _read_varint(payload, pos)
        if not 1 <= n_ch <= MAX_CHANNELS:
            raise CorruptArchiveError(f"lpc-s1 key block declares {n_ch} channels")
        check_declared_shape("lpc-s1", n_ch, n)
        new = ChainState.fresh(n_ch)
    else:
        if state is None:
            raise CorruptArchiveError("lpc-s1 continuation block decoded without the blocks before it")
        if payload[0] >> SEQ_SHIFT != (state.seq + 1) % SEQ_MOD:
            raise CorruptArchiveError("lpc-s1 continuation block does not follow the block before it")
        n, pos = (state.last_n, 1) if payload[0] & SAME_LENGTH else _read_varint(payload, 1)
        check_declared_shape("lpc-s1", state.n_ch, n)
        new = state.copy()
    key = kind == KEY
    if new.n_ch * n > se.max_values(len(payload) - pos):
        raise CorruptArchiveError(f"lpc-s1 block declares {new.n_ch} × {n} samples in {len(payload)} bytes")
    data = np.frombuffer(payload, np.uint8)
    masks = np.zeros(new.n_ch, np.int64)
    cum, offset, Ks, ks, _ = sc.coding_tables()
    status, e, dec = sc.decode_body(data, pos, key, n, masks, new.step, new.base, new.form, new.order,
                                    new.precision, new.coef, new.centre, new.nref, new.refs, new.taps, new.bias,
                                    new.shape, new.rate, new.lms, new.m, cum, offset, Ks, ks)
    if status != sc.OK:
        raise CorruptArchiveError(f"lpc-s1 block: {sc.STATUS_TEXT[status]}")
    if not se.ended_canonically(data, pos, dec):
        raise CorruptArchiveError("lpc-s1 block does not end as its encoder ended it")
    if key:
        new.seq = SEQ_MOD - 1  # advance() makes it 0
    new.derive(np.flatnonzero(masks & sc.LPC))
    e = sp.lms_restore(e, new.lms_w, new.lms_h, new.lms)
    r = sp.cross_restore(e, new.r_last, new.refs, new.nref, new.taps)
    y = sp.lpc_synthesis(r, new.lattice_history(), new.since_key, new)
    with np.errstate(over="ignore"):
        x = y * new.step[:, None] + new.base[:, None]
    new.advance(x, r)
    return x, new


# --- the encoder ------------------------------------------------------------------------------
_CARRIED = ("step", "base", "form", "order", "precision", "coef", "centre", "pq", "pshift", "pc0", "nref", "refs",
            "taps", "bias", "shape", "rate", "lms", "m")  # what a new chain starts from (then sends)


class ChainEncoder:
    """Encodes one channel group's blocks in order: ``encode(codes) -> payload`` (a key
    block when one is due, else a continuation block). Keeps the chain state and the
    windows the parameter fits use."""

    def __init__(self, codec: LPCStreamCodec, key_interval: int | None = None):
        self.codec = codec
        self.key_interval = codec.key_interval if key_interval is None else key_interval
        self.state: ChainState | None = None
        self.n_ch: int | None = None
        self._since_fit = 0
        self._refits = 0
        self._seen = 0
        self._fit_seen = 0

    def _start(self, n_ch: int) -> None:
        self.n_ch = n_ch
        self._no_delta = np.zeros(n_ch, np.bool_)
        self._no_start = np.zeros(n_ch, np.int64)
        self._trivial_lattice = True
        w = self.codec.window
        self.x_win, self.r_win, self.e_win = fit.Window(n_ch, w), fit.Window(n_ch, w), fit.Window(n_ch, w)

    def encode(self, codes, key: bool | None = None) -> bytes:
        """The next block of the chain; ``key``: force (True) or forbid (False) a key block."""
        codes = check_2d_int(codes)
        n_ch, n = codes.shape
        if self.n_ch is None:
            if not 1 <= n_ch <= MAX_CHANNELS:
                raise ValueError(f"lpc-s1 codes 1..{MAX_CHANNELS} channels, got {n_ch}")
            self._start(n_ch)
        elif n_ch != self.n_ch:
            raise ValueError(f"this stream has {self.n_ch} channels, the block {n_ch}")
        check_declared_shape("lpc-s1", n_ch, n)
        prev = self.state
        if key is None:
            key = prev is None or prev.since_key >= self.key_interval
        elif not key and prev is None:
            raise ValueError("the first block of a stream is a key block")
        self.x_win.append(codes)
        if key:
            s = ChainState.fresh(n_ch)
            if prev is not None:  # parameters and scales carry over as a starting point
                for name in _CARRIED:
                    setattr(s, name, getattr(prev, name))
        else:
            s = prev  # the encoder's own state: changed in place
        masks = np.zeros(n_ch, np.int64)
        self._choose_lattice(s, codes, key, masks)
        horizon = self.key_interval - (0 if key else s.since_key)
        self._seen += n
        early = self._seen < self.codec.window and self._seen >= 2 * self._fit_seen
        refit = key or early or self._since_fit >= self.codec.update_interval
        coef_prev, centre_prev, taps_prev = s.coef, s.centre, s.taps
        lpc_delta = cross_delta = self._no_delta
        if early:  # a fit on little data is replaced at the next early refit, when the window has doubled
            horizon = min(horizon, 4 * max(self._seen, 1))
        if refit and horizon > 0:
            coef_prev, centre_prev, taps_prev = s.coef.copy(), s.centre.copy(), s.taps.copy()
            lpc_delta, cross_delta = self._refit(s, key, horizon, masks, early)
        self._since_fit += n
        trivial = self._trivial_lattice
        with np.errstate(over="ignore"):
            y = codes if trivial else (codes - s.base[:, None]) // s.step[:, None]
        if key:
            s.r_last[:] = 0
            s.x_hist[:] = 0
        r = sp.lpc_residuals(y, s.x_hist if trivial else s.lattice_history(), s.since_key, s)
        e = sp.cross_errors(r, s.r_last, s.refs, s.nref, s.taps)
        e = sp.lms_errors(e, s.lms_w, s.lms_h, s.lms)
        start = self._no_start
        if key:
            if prev is None:  # the first block: start from its own first errors
                head = np.abs(e[:, : min(n, 16)]).mean(axis=1) if n else np.zeros(n_ch)
                s.m[:] = np.minimum(head * (1 << se.MEAN_FRAC_BITS), se.MEAN_CAP).astype(np.int64)
            start = np.array([sc.start_class(int(v)) for v in s.m], np.int64)
            s.m[:] = [sc.start_mean(int(c)) for c in start]
        cum, offset, Ks, ks, cost = sc.coding_tables()
        body = sc.encode_body(key, masks, s.step, s.base, s.form, s.order, s.precision, s.coef, s.centre, coef_prev,
                              centre_prev, lpc_delta, s.nref, s.refs, s.taps, taps_prev, cross_delta, s.bias, s.shape,
                              s.rate, s.lms, start, e, s.m, cum, offset, Ks, ks, cost, 64 + 2 * e.size)
        if key:
            head = bytes([KEY]) + _varint(n_ch) + _varint(n)
            s.seq = SEQ_MOD - 1
            s.since_key = 0
        else:
            head = bytes([CONTINUATION | ((s.seq + 1) % SEQ_MOD) << SEQ_SHIFT | (SAME_LENGTH if n == s.last_n else 0)])
            if n != s.last_n:
                head += _varint(n)
        s.advance(codes, r)
        self.state = s
        self.r_win.append(r)
        self.e_win.append(e)
        return head + body.tobytes()

    # -- lattice: codes = y·step + base --
    def _choose_lattice(self, s: ChainState, codes: np.ndarray, key: bool, masks: np.ndarray) -> None:
        if key:
            x = self.x_win.last()
            if x.size and (np.abs(x) > 1 << 61).any():
                s.step[:], s.base[:] = 1, 0
                self._trivial_lattice = True
                return
            steps = np.gcd.reduce(np.abs(x - x[:, :1]), axis=1) if x.shape[1] else np.ones(x.shape[0], np.int64)
            s.step[:] = np.maximum(steps, 1)
            s.base[:] = np.where(s.step > 1, x[:, 0] % s.step if x.shape[1] else 0, 0)
            self._trivial_lattice = not (s.step > 1).any()
            return
        coarse = np.flatnonzero(s.step > 1)
        if coarse.size == 0 or codes.shape[1] == 0:
            return
        off = ((codes[coarse] - s.base[coarse, None]) % s.step[coarse, None] != 0).any(axis=1)
        for c in coarse[off]:
            g = int(np.gcd.reduce(np.abs(codes[c] - s.base[c]))) if (np.abs(codes[c]) <= 1 << 61).all() else 1
            s.step[c] = math.gcd(int(s.step[c]), g) or 1
            s.base[c] = s.base[c] % s.step[c] if s.step[c] > 1 else 0
            masks[c] |= sc.LATTICE
        self._trivial_lattice = not (s.step > 1).any()

    # -- parameters --
    def _refit(self, s: ChainState, key: bool, horizon: int, masks: np.ndarray, early: bool):
        """New parameters where they pay (all at a key block): changes ``s`` and ``masks``;
        returns which channels' predictor and taps are sent as differences."""
        self._since_fit = 0
        self._fit_seen = self._seen
        n_ch = s.n_ch
        lpc_delta = np.zeros(n_ch, np.bool_)
        cross_delta = np.zeros(n_ch, np.bool_)
        self._refits += 1
        # between key blocks, the predictors and the cross-channel taps are re-fitted in turn
        do_lpc = key or early or self._refits % 2 == 0
        do_cross = key or early or self._refits % 2 == 1
        if do_lpc:
            self._refit_lpc(s, key, horizon, masks, lpc_delta, self.x_win.last().astype(np.float64))
        if do_cross:
            self._refit_cross(s, key, horizon, masks, cross_delta)
        self._refit_entropy(s, key, horizon, masks)
        if key:
            masks[:] = sc.ALL_GROUPS
        return lpc_delta, cross_delta

    def _refit_lpc(self, s, key, horizon, masks, lpc_delta, x) -> None:
        _, offset, Ks, ks, cost = sc.coding_tables()
        n_ch = s.n_ch
        forms, orders, precs, coefs, covs, top = fit.fit_predictors(x, self.codec.max_order, float(horizon), 8.0, cost,
                                                                    offset, Ks, ks)
        with np.errstate(invalid="ignore", over="ignore"):
            centres = np.nan_to_num(np.rint((x.mean(axis=1) - s.base) / s.step)).astype(np.int64) \
                if x.shape[1] else np.zeros(n_ch, np.int64)
        changed = []
        for c in range(n_ch):
            if not key:
                e_new = fit.parameter_energy(covs[c], top, forms[c], orders[c], precs[c], coefs[c]) \
                    * fit.out_of_sample(float(x.shape[1] - top), float(orders[c]))
                e_old = fit.prediction_energy(covs[c], top, s.order[c], s.pshift[c], s.pq[c])
                if e_new <= 0 or (0 <= e_old <= e_new):
                    continue
                gain = 0.5 * horizon * math.log2(e_old / e_new) if e_old > 0 else math.inf
                absolute = sc.row_cost(coefs[c], int(orders[c]), cost, offset, Ks, ks)
                same = forms[c] == s.form[c] and precs[c] == s.precision[c]
                delta = sc.row_cost(coefs[c] - s.coef[c], int(orders[c]), cost, offset, Ks, ks) if same else math.inf
                price = min(absolute, delta) + _CHANGE_BITS + 2 * math.log2(abs(int(centres[c] - s.centre[c])) + 1)
                if gain <= price + _MARGIN_BITS:
                    continue
                lpc_delta[c] = delta < absolute
                masks[c] |= sc.LPC
            s.form[c], s.order[c], s.precision[c], s.coef[c], s.centre[c] = \
                forms[c], orders[c], precs[c], coefs[c], centres[c]
            changed.append(c)
        s.derive(np.asarray(changed, np.int64))

    def _refit_cross(self, s, key, horizon, masks, cross_delta) -> None:
        _, offset, Ks, ks, cost = sc.coding_tables()
        codec, n_ch = self.codec, s.n_ch
        rwin = self.r_win.last(min(self.r_win.fill, CROSS_WINDOW))
        if codec.refs and rwin.shape[1] >= 16:
            recent = min(rwin.shape[1], CROSS_RECENT)
            nref, refs, taps, bits_new, bits_prev, bits_none = fit.fit_cross(rwin, codec.refs, s.nref, s.refs,
                                                                              s.taps, recent)
            scale = min(horizon, 4 * recent) / recent
            for c in range(n_ch):
                tap_bits = sc.row_key(taps[c].ravel(), 3 * int(nref[c]), cost, offset, Ks, ks)[1] if nref[c] else 0
                price_new = tap_bits + _CHANGE_BITS + nref[c] * math.log2(max(c, 2))
                current = bits_prev[c] if not key else bits_none[c]
                options = [(current * scale, None)]
                if nref[c]:
                    options.append((bits_new[c] * scale + price_new + _MARGIN_BITS, "new"))
                if not key and s.nref[c]:
                    options.append((bits_none[c] * scale + _CHANGE_BITS, "none"))
                choice = min(options, key=lambda o: o[0])[1]
                if choice == "new":
                    if not key and s.nref[c] == nref[c] and (s.refs[c] == refs[c]).all():
                        d = (taps[c] - s.taps[c]).ravel()
                        cross_delta[c] = sc.row_key(d, d.size, cost, offset, Ks, ks)[1] < tap_bits
                    s.nref[c], s.refs[c], s.taps[c] = nref[c], refs[c], taps[c]
                    masks[c] |= sc.CROSS
                elif choice == "none" or (key and choice is None):
                    if s.nref[c]:
                        masks[c] |= sc.CROSS
                    s.nref[c] = 0
                    s.refs[c] = 0
                    s.taps[c] = 0

    def _refit_entropy(self, s, key, horizon, masks) -> None:
        _, offset, Ks, ks, cost = sc.coding_tables()
        n_ch = s.n_ch
        ewin = self.e_win.last(min(self.e_win.fill, ENTROPY_WINDOW))
        if ewin.shape[1] >= 32 and (key or self._refits % ENTROPY_EVERY == 0):
            bias, shape, rate, saved = fit.fit_entropy(np.ascontiguousarray(ewin), s.bias, s.shape, s.rate,
                                                      sc.BIAS_MIN, sc.BIAS_MIN + (1 << sc.BIAS_BITS) - 1,
                                                      sc.RATE_MIN, sc.RATE_MIN + (1 << sc.RATE_BITS) - 1,
                                                      cost, offset, Ks, ks)
            scale = horizon / ewin.shape[1]
            for c in range(n_ch):
                if key or saved[c] * scale > _CHANGE_BITS + _MARGIN_BITS:
                    if (bias[c], shape[c], rate[c]) != (s.bias[c], s.shape[c], s.rate[c]):
                        masks[c] |= sc.ENTROPY
                    s.bias[c], s.shape[c], s.rate[c] = bias[c], shape[c], rate[c]
