"""Fidelity of a lossy reconstruction: PRD, PRDN, SNR, RMSE, max |error|, band-power errors.

Accumulated chunk by chunk, per channel and over all channels:

* PRD  = 100·‖x − x̂‖ / ‖x‖
* PRDN = 100·‖x − x̂‖ / ‖x − mean(x)‖   (the usual figure for EEG; mean per channel)
* SNR  = 20·log10(‖x − mean(x)‖ / ‖x − x̂‖) dB
* RMSE and max |x − x̂| in µV (values in V, or their unit × 1e-6)
* relative band-power error |P̂_b − P_b| / P_b in δ (1–4 Hz), θ (4–8), α (8–13), β (13–30), γ (30–45),
  from Welch spectra averaged over chunks.
"""

from __future__ import annotations

import numpy as np

BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0),
         "gamma": (30.0, 45.0)}
TO_MICRO = 1e6


class FidelityMeter:
    def __init__(self, n_channels: int, sfreq: float):
        self.sfreq = sfreq
        z = np.zeros(n_channels)
        self.n = 0
        self.sum_x, self.sum_x2, self.sum_e2, self.max_e = z.copy(), z.copy(), z.copy(), z.copy()
        self.psd_x = self.psd_y = None
        self.n_psd = 0
        self._freqs = None

    def update(self, x: np.ndarray, x_hat: np.ndarray) -> None:
        """One chunk (n_channels, n) of source values and their reconstruction."""
        x = np.asarray(x, np.float64)
        e = np.asarray(x_hat, np.float64) - x
        self.n += x.shape[1]
        self.sum_x += x.sum(axis=1)
        self.sum_x2 += (x**2).sum(axis=1)
        self.sum_e2 += (e**2).sum(axis=1)
        if x.shape[1]:
            self.max_e = np.maximum(self.max_e, np.abs(e).max(axis=1))
        seg = min(x.shape[1], int(2 * self.sfreq))
        if seg >= 16:
            from scipy.signal import welch  # here: scipy.signal takes ~0.4 s to import

            f, px = welch(x, self.sfreq, nperseg=seg, axis=-1)
            _, py = welch(x_hat, self.sfreq, nperseg=seg, axis=-1)
            if self._freqs is None or self._freqs.shape != f.shape:
                if self.psd_x is None:
                    self._freqs, self.psd_x, self.psd_y = f, np.zeros_like(px), np.zeros_like(py)
                else:  # a short last chunk: a coarser spectrum; leave it out
                    return
            self.psd_x += px * x.shape[1]
            self.psd_y += py * x.shape[1]
            self.n_psd += x.shape[1]

    def result(self) -> dict:
        """Per channel (lists) and overall (floats) figures."""
        n = max(self.n, 1)
        centred = self.sum_x2 - self.sum_x**2 / n
        with np.errstate(divide="ignore", invalid="ignore"):
            per = {
                "prd": 100 * np.sqrt(self.sum_e2 / self.sum_x2),
                "prdn": 100 * np.sqrt(self.sum_e2 / centred),
                "snr_db": 10 * np.log10(centred / self.sum_e2),
                "rmse_uv": TO_MICRO * np.sqrt(self.sum_e2 / n),
                "max_abs_error_uv": TO_MICRO * self.max_e,
            }
            overall = {
                "prd": float(100 * np.sqrt(self.sum_e2.sum() / self.sum_x2.sum())),
                "prdn": float(100 * np.sqrt(self.sum_e2.sum() / centred.sum())),
                "snr_db": float(10 * np.log10(centred.sum() / self.sum_e2.sum())),
                "rmse_uv": float(TO_MICRO * np.sqrt(self.sum_e2.sum() / (n * self.sum_e2.size))),
                "max_abs_error_uv": float(TO_MICRO * self.max_e.max()) if self.max_e.size else 0.0,
            }
            for band, (lo, hi) in BANDS.items():
                if self.psd_x is None or hi > self.sfreq / 2:
                    continue
                sel = (self._freqs >= lo) & (self._freqs < hi)
                px, py = self.psd_x[:, sel].sum(axis=1), self.psd_y[:, sel].sum(axis=1)
                per[f"band_{band}"] = np.abs(py - px) / px
                overall[f"band_{band}"] = float(np.abs(py.sum() - px.sum()) / px.sum())
        clean = lambda v: [float(a) if np.isfinite(a) else None for a in v]  # noqa: E731
        return {"overall": {k: (v if np.isfinite(v) else None) for k, v in overall.items()},
                "per_channel": {k: clean(v) for k, v in per.items()}}
