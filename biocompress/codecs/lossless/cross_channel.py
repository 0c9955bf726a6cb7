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

import numpy as np

LAGS = (-1, 0, 1)
SHIFT = 12
COEF_LIMIT = 1 << 20
NO_REF = 255
_HEADROOM = 2**62
_TAP_COST_BITS = 14.0


def lagged(r: np.ndarray, a: int, b: int, lag: int) -> np.ndarray:
    """r[t + lag] for t in [a, b), zero where t + lag falls outside r."""
    out = np.zeros(b - a, np.int64)
    lo, hi = max(a + lag, 0), min(b + lag, r.shape[0])
    if hi > lo:
        out[lo - (a + lag) : hi - (a + lag)] = r[lo:hi]
    return out


def predict(residuals: np.ndarray, refs, coefs: np.ndarray, a: int, b: int) -> np.ndarray:
    acc = np.full(b - a, 1 << (SHIFT - 1), np.int64)
    k = 0
    for j in refs:
        for lag in LAGS:
            acc += coefs[k] * lagged(residuals[j], a, b, lag)
            k += 1
    return acc >> SHIFT


def choose(residuals: np.ndarray, frame: int, n_refs: int):
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
        block = residuals[:, a:b].astype(np.float64)
        energy = (block**2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.nan_to_num(np.corrcoef(block)) if n_ch > 1 else np.ones((1, 1))
        for c in range(1, n_ch):
            if energy[c] == 0:
                continue
            cand = np.sort(np.argsort(-np.abs(corr[c, :c]), kind="stable")[:n_refs])
            design = np.stack([lagged(residuals[j], a, b, lag) for j in cand for lag in LAGS], axis=1)
            fit, *_ = np.linalg.lstsq(design.astype(np.float64), block[c], rcond=None)
            q = np.clip(np.round(fit * (1 << SHIFT)), -COEF_LIMIT, COEF_LIMIT).astype(np.int64)
            if (np.abs(q).sum() + 1) * (int(peak[cand].max()) + 1) >= _HEADROOM:
                continue
            e = residuals[c, a:b] - predict(residuals, cand, q, a, b)
            gain = 0.5 * (b - a) * np.log2((energy[c] + (b - a)) / (float((e.astype(np.float64) ** 2).sum()) + (b - a)))
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
