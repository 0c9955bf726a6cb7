"""Rate control for a PRDN target (``--max-prdn``): the coarsest setting that keeps every
channel's PRDN at or below the target, chosen on the first block of a stream.

Two ways to reach it:

* the autoencoder's latent step, found by bisection (log scale) on the first block's
  worst-channel PRDN; the autoencoder alone has an error floor that depends on the recording,
  so a target below it is out of its reach (None);
* a bounded residual on integer codes (``nl-v1``) with a bound per channel: a residual
  quantized in steps of 2δ + 1 codes errs by about δ/√3 RMS, so δ_c = √3 · target · σ_c
  (in codes) puts each channel's PRDN near the target, whatever the others do.
"""

from __future__ import annotations

import math

import numpy as np

MIN_STEP, MAX_STEP = 0.02, 64.0
BISECTIONS = 12
MARGIN = 0.92  # aim a little under the target: the rest of the recording is not the first block


def prdn_per_channel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """100·‖x − y‖ / ‖x − mean(x)‖ per channel (NaN for a constant channel)."""
    centred = ((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(centred > 0, 100 * np.sqrt(((y - x) ** 2).sum(axis=1) / centred), np.nan)


FLAT_RELATIVE = 1e-12  # a channel whose spread is under this × its RMS is constant but for float rounding


class Moments:
    """Per channel: samples, mean and centred energy Σ(x − mean)² of blocks seen one after
    another (merged exactly, Chan et al.: a large offset costs no precision)."""

    def __init__(self, n_ch: int):
        self.n, self.mean, self.centred = 0, np.zeros(n_ch), np.zeros(n_ch)

    def add(self, x: np.ndarray) -> "Moments":
        m = x.shape[1]
        if m:
            mean = x.mean(axis=1)
            centred = ((x - mean[:, None]) ** 2).sum(axis=1)
            total = self.n + m
            delta = mean - self.mean
            self.centred = self.centred + centred + delta**2 * self.n * m / total
            self.mean = self.mean + delta * m / total
            self.n = total
        return self


class Stretches:
    """Stretches of a recording, cut as its stream cuts blocks, that a coder's settings are
    calibrated on: the whole recording (``whole``) where it is small enough, else blocks spread
    over it. A coder that codes each block on its own then shows on them the PRDN it will have.
    ``moments``: the whole recording's (:class:`Moments`), where the blocks are a sample of it:
    the error per sample the blocks show is then taken over the whole recording's samples, and
    against its centred energy (a drifting recording's middle blocks deviate little from its
    mean, yet err as much as the others). ``bands``: the frequency bands ((k, 2), [lo, hi) in
    cycles per sample) whose power a coder's band gains keep (:mod:`.equalizer`), None: none;
    ``segment``: the length of the Welch segments those powers are measured on."""

    def __init__(self, blocks: list[np.ndarray], whole: bool, moments: Moments | None = None,
                 bands: np.ndarray | None = None, segment: int | None = None):
        self.blocks, self.whole, self.bands, self.segment = blocks, whole, bands, segment
        if moments is None:
            moments = Moments(blocks[0].shape[0]) if blocks else Moments(0)
            for x in blocks:
                moments.add(x)
        n = max(moments.n, 1)
        self.centred = moments.centred
        self.per_sample = n / max(sum(x.shape[1] for x in blocks), 1)  # the blocks' error → the recording's
        spread = np.sqrt(self.centred / n)
        rms = np.sqrt(moments.mean**2 + spread**2)
        self.flat = spread <= FLAT_RELATIVE * rms  # constant but for float rounding: no PRDN
        self.spread = np.where(self.flat, 0.0, spread)  # each channel's standard deviation over them (0: flat)

    def prdn(self, codec, a: int, b: int) -> tuple[np.ndarray, int]:
        """Per channel ``a:b``, the PRDN of ``codec`` (which codes those channels) over the
        stretches (NaN for a constant channel), and the bytes it took."""
        e2, size = np.zeros(b - a), 0
        for x in self.blocks:
            payload = codec.encode(x[a:b])
            size += len(payload)
            e2 += ((codec.decode(payload) - x[a:b]) ** 2).sum(axis=1)
        centred = self.centred[a:b]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.flat[a:b], np.nan, 100 * np.sqrt(e2 * self.per_sample / centred)), size


NEAR_AIM = 0.995  # a search for the largest step within an aim homes in on this much of it


def largest_steps(judge, steps: np.ndarray, aim: float, rounds: int) -> np.ndarray:
    """Per channel, the largest step tried whose PRDN stays within ``aim`` (a quarter of the
    first guess where none did). ``judge(steps)``: each channel's PRDN at those steps, growing
    with its step, channels independent of one another. Each channel's step moves by how far
    its PRDN fell from the aim, at the PRDN's growth with the step measured on its last two
    tries (coarse steps zero whole sub-bands: the PRDN then grows slower than the step); once
    a step within the aim and one over it are known, by log-log interpolation between them."""
    steps = np.asarray(steps, np.float64)
    fallback = steps / 4
    lo, p_lo = np.zeros_like(steps), np.zeros_like(steps)
    hi, p_hi = np.full_like(steps, np.inf), np.full_like(steps, np.inf)
    last, p_last = None, None
    goal = NEAR_AIM * aim
    for _ in range(rounds):
        p = np.asarray(judge(steps), np.float64)
        held = ~np.isfinite(p) | (p <= aim)
        p = np.where(np.isfinite(p), p, 0.0)
        up, down = held & (steps > lo), ~held & (steps < hi)
        lo, p_lo = np.where(up, steps, lo), np.where(up, p, p_lo)
        hi, p_hi = np.where(down, steps, hi), np.where(down, p, p_hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.ones_like(steps)
            if last is not None:
                measured = np.log(p / p_last) / np.log(steps / last)
                slope = np.where(np.isfinite(measured), np.clip(measured, 0.3, 1.5), 1.0)
            guess = steps * np.clip(np.where(p > 0, (goal / p) ** (1 / slope), 2.0), 0.25, 4.0)
            t = np.clip((np.log(goal) - np.log(p_lo)) / (np.log(p_hi) - np.log(p_lo)), 0.1, 0.9)
            inside = np.where(p_lo > 0, np.exp(np.log(lo) + t * (np.log(hi) - np.log(lo))), np.sqrt(lo * hi))
        last, p_last = steps, p
        steps = np.where((lo > 0) & np.isfinite(hi), inside, guess)
    return np.where(lo > 0, lo, fallback)


def _worst(codec, x: np.ndarray, judged: np.ndarray) -> tuple[float, int]:
    payload = codec.encode(x)
    p = prdn_per_channel(x, codec.decode(payload))[judged]
    p = p[np.isfinite(p)]
    return (float(p.max()) if p.size else 0.0), len(payload)


def ae_step_for(x: np.ndarray, judged: np.ndarray, target: float, model_path) -> tuple[float, int] | None:
    """The largest latent step whose worst PRDN over channels ``judged`` is ≤ ``target`` on
    ``x``, and the bytes it takes; None where the autoencoder cannot reach the target."""
    from .ae_codec import AECodec

    def trial(step):
        return _worst(AECodec.for_stream(x, step=step, model_path=model_path), x, judged)  # as lossy_lanes codes it

    worst, size = trial(MAX_STEP)
    if worst <= target:
        return MAX_STEP, size
    worst, size = trial(MIN_STEP)
    if worst > target:
        return None
    good, bad, good_size = math.log(MIN_STEP), math.log(MAX_STEP), size
    for _ in range(BISECTIONS):
        mid = (good + bad) / 2
        worst, size = trial(math.exp(mid))
        if worst <= target:
            good, good_size = mid, size
        else:
            bad = mid
    return math.exp(good), good_size


def ae_step_for_bits(x: np.ndarray, bits: float, model_path) -> float:
    """The finest latent step whose coding of ``x`` takes at most ``bits`` per sample (the
    coarsest step, MAX_STEP, where none does): bytes fall as the step grows."""
    from .ae_codec import AECodec

    def size(step):
        return 8 * len(AECodec.for_stream(x, step=step, model_path=model_path).encode(x)) / max(x.size, 1)

    if size(MAX_STEP) > bits:
        return MAX_STEP
    if size(MIN_STEP) <= bits:
        return MIN_STEP
    fine, coarse = math.log(MIN_STEP), math.log(MAX_STEP)  # fine: over budget; coarse: within
    for _ in range(BISECTIONS):
        mid = (fine + coarse) / 2
        if size(math.exp(mid)) <= bits:
            coarse = mid
        else:
            fine = mid
    return math.exp(coarse)


def residual_bounds(codes: np.ndarray, exact: np.ndarray, target: float) -> np.ndarray:
    """Per channel, the bound δ in codes that puts its PRDN near ``target`` % (0: exact)."""
    sigma = codes.astype(np.float64).std(axis=1)
    deltas = np.floor(math.sqrt(3) * target / 100 * sigma).astype(np.int64)
    deltas[exact] = 0
    return np.maximum(deltas, 0)


REFINE_ROUNDS = 4


def refine_bounds(codec_for, codes: np.ndarray, deltas: np.ndarray, aim: float) -> np.ndarray:
    """Per channel, the largest bound tried whose PRDN on ``codes`` stays ≤ ``aim`` (0, exact,
    always does): each round scales a channel's bound by how far its PRDN fell from the aim.
    ``codec_for(deltas)`` builds the residual codec."""
    x = codes.astype(np.float64)
    best = np.zeros_like(deltas)
    for _ in range(REFINE_ROUNDS):
        codec = codec_for(deltas)
        p = prdn_per_channel(x, codec.decode(codec.encode(codes)).astype(np.float64))
        held = ~np.isfinite(p) | (p <= aim)
        best = np.where(held, np.maximum(best, deltas), best)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.isfinite(p) & (p > 0), aim / p, 2.0)
        nxt = np.floor(deltas * np.clip(ratio, 0.5, 3.0)).astype(np.int64)
        nxt = np.where(held, np.maximum(nxt, deltas), np.minimum(nxt, deltas - 1))  # up where held, down where not
        deltas = np.maximum(nxt, 0)
    return best
