"""Cross-channel stage: predict a channel's LPC residual from earlier channels' residuals.

EEG/MEG channels share much of their innovation (common reference, artefacts,
volume conduction), which per-channel LPC cannot remove. Per frame, channel c
may take up to ``n_refs`` reference channels j < c and predicts::

    pred[t] = (sum_{j, lag} b[j, lag] * r_j[t + lag] + 2**(SHIFT-1)) >> SHIFT,  lag in LAGS

with r_j the LPC residual of channel j over the whole block (zero outside it).
The reference residuals are known before channel c is decoded, so lags may look
ahead, and the whole stage is integer numpy on arrays (no per-sample loop).
"""

from __future__ import annotations

import numba
import numpy as np

LAGS = (-1, 0, 1)
SHIFT = 12
COEF_LIMIT = 1 << 20
NO_REF = 255
_HEADROOM = 2**62
_TAP_COST_BITS = 14.0
IRLS_STEPS = 1


def lagged(r: np.ndarray, a: int, b: int, lag: int, bounds: tuple[int, int] | None = None) -> np.ndarray:
    """r[t + lag] for t in [a, b), zero where t + lag falls outside ``bounds`` (default: r)."""
    out = np.zeros(b - a, np.int64)
    first, last = bounds if bounds is not None else (0, r.shape[0])
    lo, hi = max(a + lag, first), min(b + lag, last)
    if hi > lo:
        out[lo - (a + lag) : hi - (a + lag)] = r[lo:hi]
    return out


def coded_bits(e: np.ndarray, segment: int = 256) -> float:
    """Rough coded size of residuals under segment-adaptive Laplace models (bits).

    Mean |e| per segment, not energy: spikes inflate energy but cost only a few escapes.
    """
    m = e.shape[0] // segment * segment
    parts = [np.abs(e[:m]).reshape(-1, segment).mean(axis=1)] if m else []
    bits = float(segment * np.log2(parts[0] + 0.7).sum()) if m else 0.0
    if m < e.shape[0]:
        bits += (e.shape[0] - m) * float(np.log2(np.abs(e[m:]).mean() + 0.7))
    return bits


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _predict_kernel(residuals, refs, coefs, a, b, lags, shift, first, n):
    # Tap by tap over the frame (vectorizes); in float64 while every partial sum is an
    # integer below 2**53 (exact in any order), else in int64. Same integers either way.
    # Reference samples outside [first, n) count as zero.
    total = 0.0
    for k in range(coefs.size):
        total += abs(float(coefs[k]))
    peak = 0.0
    for j in refs:
        for t in range(max(first, a - 1), min(n, b + 1)):
            peak = max(peak, abs(float(residuals[j, t])))
    half = np.int64(1) << (shift - 1)
    out = np.empty(b - a, np.int64)
    if total * peak < 4.0e15:
        acc = np.full(b - a, float(half))
        k = 0
        for j in refs:
            for lag in lags:
                c = float(coefs[k])
                for t in range(max(a, first - lag), min(b, n - lag)):
                    acc[t - a] += c * residuals[j, t + lag]
                k += 1
        scale = 1.0 / float(np.int64(1) << shift)
        for t in range(b - a):
            out[t] = np.int64(np.floor(acc[t] * scale))
        return out
    acc_i = np.full(b - a, half)
    k = 0
    for j in refs:
        for lag in lags:
            for t in range(max(a, first - lag), min(b, n - lag)):
                acc_i[t - a] += coefs[k] * residuals[j, t + lag]
            k += 1
    for t in range(b - a):
        out[t] = acc_i[t] >> shift
    return out


_LAGS = np.asarray(LAGS, np.int64)


def predict(residuals: np.ndarray, refs, coefs: np.ndarray, a: int, b: int, framed: bool = False) -> np.ndarray:
    """Cross-channel prediction of samples [a, b); ``framed``: references are zero outside
    [a, b) (lpc-v3, so frames decode independently), else outside the block (lpc-v2)."""
    first, last = (a, b) if framed else (0, residuals.shape[1])
    return _predict_kernel(residuals, np.asarray(refs, np.int64), np.asarray(coefs, np.int64), a, b, _LAGS, SHIFT,
                           first, last)


@numba.njit(cache=True, nogil=True)
def _weighted_normal_equations(d, y, w):
    # Σ w·dᵀd and Σ w·d·y without temporaries (a BLAS call per frame is slower here)
    n, k = d.shape
    gram = np.zeros((k, k))
    rhs = np.zeros(k)
    for t in range(n):
        for i in range(k):
            wi = w[t] * d[t, i]
            rhs[i] += wi * y[t]
            for j in range(i + 1):
                gram[i, j] += wi * d[t, j]
    for i in range(k):
        for j in range(i):
            gram[j, i] = gram[i, j]
    return gram, rhs


def robust_fit(d: np.ndarray, y: np.ndarray, iterations: int | None = None):
    """Taps minimising roughly Σ|error| (iteratively reweighted least squares).

    Residuals are Laplacian with bursts; a plain least-squares fit chases the bursts.
    """
    iterations = IRLS_STEPS if iterations is None else iterations
    eye = np.eye(d.shape[1])
    w = np.ones(d.shape[0])
    fit = None
    for _ in range(iterations + 1):
        gram, rhs = _weighted_normal_equations(d, y, w)
        try:
            fit = np.linalg.solve(gram + (1e-9 * np.trace(gram) + 1e-12) * eye, rhs)
        except np.linalg.LinAlgError:
            return fit
        err = np.abs(y - d @ fit)
        w = 1.0 / np.maximum(err, 0.5 * err.mean() + 1e-9)
    return fit


def choose(residuals: np.ndarray, frame: int, n_refs: int, framed: bool = False):
    """Pick references and quantized taps per (channel, frame); return (errors, refs, coefs).

    refs: uint8 (n_ch, n_frames, n_refs), sorted, NO_REF-padded (channel c can
    have at most c references); coefs: int64, len(LAGS) per used reference, in
    channel-major, frame, reference order.
    """
    n_ch, n = residuals.shape
    n_frames = -(-n // frame)
    errors = residuals.copy()
    refs = np.full((n_ch, n_frames, n_refs), NO_REF, np.uint8)
    coefs: list[np.ndarray] = []
    if n_refs == 0:
        return errors, refs, np.zeros(0, np.int64)
    peak = np.abs(residuals).max(axis=1) if n else np.zeros(n_ch, np.int64)
    frame_coefs = [[None] * n_frames for _ in range(n_ch)]
    for f in range(n_frames):
        a, b = f * frame, min(n, (f + 1) * frame)
        if b - a < 16:  # too short to fit taps worth their cost
            continue
        block = residuals[:, a:b].astype(np.float64)
        energy = (block**2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.nan_to_num(np.corrcoef(block)) if n_ch > 1 else np.ones((1, 1))
        for c in range(1, n_ch):
            if energy[c] == 0:
                continue
            cand = np.sort(np.argsort(-np.abs(corr[c, :c]), kind="stable")[:n_refs])
            bounds = (a, b) if framed else None
            design = np.stack([lagged(residuals[j], a, b, lag, bounds) for j in cand for lag in LAGS], axis=1)
            fit = robust_fit(design.astype(np.float64), block[c])
            if fit is None:
                continue
            q = np.clip(np.round(fit * (1 << SHIFT)), -COEF_LIMIT, COEF_LIMIT).astype(np.int64)
            if (int(np.abs(q).sum()) + 1) * (int(peak[cand].max()) + 1) >= _HEADROOM:
                continue
            e = residuals[c, a:b] - predict(residuals, cand, q, a, b, framed)
            gain = coded_bits(residuals[c, a:b]) - coded_bits(e)
            if gain > q.size * _TAP_COST_BITS + 8:
                errors[c, a:b] = e
                refs[c, f, : cand.size] = cand
                frame_coefs[c][f] = q
    for c in range(n_ch):
        coefs += [q for q in frame_coefs[c] if q is not None]
    flat = np.concatenate(coefs) if coefs else np.zeros(0, np.int64)
    return errors, refs, flat


def restore(errors: np.ndarray, refs: np.ndarray, coefs: np.ndarray, frame: int) -> np.ndarray:
    """Inverse of :func:`choose`: LPC residuals from the coded errors (in channel order)."""
    residuals = errors.copy()
    n_ch, n = errors.shape
    k = 0
    for c in range(n_ch):
        for f in range(refs.shape[1]):
            used = refs[c, f][refs[c, f] != NO_REF].astype(np.int64)
            if used.size == 0:
                continue
            if (used >= c).any() or k + used.size * len(LAGS) > coefs.size:
                raise ValueError(f"channel {c} frame {f}: invalid cross-channel references")
            a, b = f * frame, min(n, (f + 1) * frame)
            taps = used.size * len(LAGS)
            residuals[c, a:b] += predict(residuals, used, coefs[k : k + taps], a, b)
            k += taps
    if k != coefs.size:
        raise ValueError("cross-channel coefficients do not match the references")
    return residuals


def restore_frame(residuals: np.ndarray, refs_f: np.ndarray, coefs: np.ndarray, a: int, b: int,
                  only: set[int] | None = None) -> None:
    """Framed (lpc-v3) inverse for one frame, in place: channel order, taps of this frame.

    ``only``: rebuild just these channels (a reader's channels and their references).
    """
    mask = np.ones(residuals.shape[0], np.bool_)
    if only is not None:
        mask[:] = False
        mask[[c for c in only if 0 <= c < mask.size]] = True
    status = _restore_frame_kernel(residuals, np.asarray(refs_f, np.int64), np.asarray(coefs, np.int64), a, b,
                                   mask, _LAGS, SHIFT)
    if status == -1:
        raise ValueError("cross-channel coefficients do not match the references")
    if status > 0:
        raise ValueError(f"channel {status - 1}: invalid cross-channel references")


@numba.njit(cache=True, nogil=True)
def _restore_frame_kernel(residuals, refs_f, coefs, a, b, only, lags, shift):
    # 0 when done; c + 1 when channel c's references are invalid; -1 when taps are left over.
    k = 0
    for c in range(residuals.shape[0]):
        n_used = 0
        for j in refs_f[c]:
            if j != NO_REF:
                n_used += 1
        if n_used == 0:
            continue
        used = np.empty(n_used, np.int64)
        i = 0
        for j in refs_f[c]:
            if j != NO_REF:
                if j < 0 or j >= c:
                    return c + 1
                used[i] = j
                i += 1
        taps = n_used * lags.size
        if k + taps > coefs.size:
            return c + 1
        if only[c]:
            residuals[c, a:b] += _predict_kernel(residuals, used, coefs[k : k + taps], a, b, lags, shift, a, b)
        k += taps
    return 0 if k == coefs.size else -1


def reference_closure(channels, refs: np.ndarray) -> set[int]:
    """The channels whose residuals rebuilding ``channels`` needs (references of references...)."""
    needed, todo = set(), list(channels)
    while todo:
        c = todo.pop()
        if c in needed or not 0 <= c < refs.shape[0]:
            continue
        needed.add(c)
        todo += [int(j) for j in refs[c].ravel() if j != NO_REF]
    return needed
