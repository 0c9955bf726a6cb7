"""Fidelity of a lossy reconstruction: PRD, PRDN, SNR, RMSE, max |error|, band-power errors.

Accumulated chunk by chunk, per channel:

* PRD  = 100·‖x − x̂‖ / ‖x‖
* PRDN = 100·‖x − x̂‖ / ‖x − mean(x)‖   (the usual figure for EEG; mean per channel)
* SNR  = 20·log10(‖x − mean(x)‖ / ‖x − x̂‖) dB
* RMSE and max |x − x̂| in µV (values in V, or their unit × 1e-6)
* relative band-power error |P̂_b − P_b| / P_b per band (:data:`BANDS`, up to the Nyquist
  frequency), from Welch spectra averaged over chunks.

:meth:`FidelityMeter.result` gives them per channel (``per_channel``), pooled over every
channel (``overall``, as archives before the headline stored them), and summarized honestly:

* ``headline``: the data channels only (EEG, MEG, sEEG, ECoG…: :data:`DATA_TYPES`), flat
  channels left out; the mean of their PRDNs next to the worst channel's, max |error| per unit,
  and each band's error Σ|P̂ − P| / ΣP over them (no cancellation between channels);
* ``by_type``: the same per channel type (eeg, mag, grad, ecg, eog, misc…);
* ``excluded``: the channels named that the headline leaves out (stim, flat, other types).

Numbers are floats (None where undefined: the SNR of an exact channel, the PRDN of a flat one).
"""

from __future__ import annotations

import numpy as np

from ..codecs.lossy.rate import FLAT_RELATIVE, Moments  # the rule the wavelet coders' fits follow too

# The classic EEG bands, then faster ones; a band is measured up to the recording's Nyquist frequency
BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0),
         "gamma": (30.0, 45.0), "high_gamma": (45.0, 90.0), "ripple": (90.0, 250.0), "fast_ripple": (250.0, 500.0)}
LEGACY_BANDS = ("delta", "theta", "alpha", "beta", "gamma")  # the overall figures archives always held
TO_MICRO = 1e6
DATA_TYPES = frozenset({"eeg", "mag", "grad", "planar1", "planar2", "ref_meg", "seeg", "ecog", "dbs", "csd",
                        "hbo", "hbr", "fnirs_cw_amplitude", "fnirs_fd_ac_amplitude", "fnirs_fd_phase", "fnirs_od"})
STIM_TYPES = frozenset({"stim"})
# FIFF unit code → (display unit, factor from SI)
DISPLAY_UNITS = {107: ("µV", 1e6), 112: ("fT", 1e15), 201: ("fT/cm", 1e13)}
OTHER_UNIT = ("SI unit", 1.0)
MIN_BAND_WIDTH_HZ = 1.0  # a band cut by the Nyquist frequency is kept if at least this wide


# EDF files label every signal EEG; its name often says otherwise ("ECG ECG", "EOG left")
TYPE_BY_NAME = {"ECG": "ecg", "EKG": "ecg", "EOG": "eog", "EMG": "emg"}


def measured_types(ch_names, ch_types) -> list[str]:
    """MNE's channel types, with EEG channels whose name starts with ECG/EKG/EOG/EMG retyped."""
    out = []
    for name, kind in zip(ch_names, ch_types):
        word = str(name).strip().upper()[:3]
        out.append(TYPE_BY_NAME.get(word, kind) if kind == "eeg" else kind)
    return out


def bands_for(sfreq: float) -> dict[str, tuple[float, float]]:
    """The bands below the Nyquist frequency, the last one cut there."""
    nyquist = sfreq / 2
    return {name: (lo, min(hi, nyquist)) for name, (lo, hi) in BANDS.items() if min(hi, nyquist) - lo >= MIN_BAND_WIDTH_HZ}


WELCH_SECONDS = 2.0  # the band powers' Welch segments (0.5 Hz resolution)


def welch_segment(sfreq: float) -> int:
    """The samples of a Welch segment (a chunk shorter than it: the chunk)."""
    return int(WELCH_SECONDS * sfreq)


def display_unit(fiff_unit: int) -> tuple[str, float]:
    return DISPLAY_UNITS.get(int(fiff_unit), OTHER_UNIT)


class FidelityMeter:
    """``ch_names``, ``ch_types`` (MNE's channel types) and ``units`` (FIFF unit codes) name the
    channels in the summaries; without types every channel counts as a data channel."""

    def __init__(self, n_channels: int, sfreq: float, ch_names=None, ch_types=None, units=None):
        self.sfreq = sfreq
        self.ch_names = list(ch_names) if ch_names is not None else [str(i) for i in range(n_channels)]
        self.ch_types = measured_types(self.ch_names, ch_types) if ch_types is not None else ["data"] * n_channels
        self.units = [int(u) for u in units] if units is not None else [107] * n_channels
        z = np.zeros(n_channels)
        self.sum_x, self.sum_x2, self.sum_e2, self.max_e = z.copy(), z.copy(), z.copy(), z.copy()
        self._moments = Moments(n_channels)  # samples seen, and a stable spread to find the flat channels
        self.psd_x = self.psd_y = None
        self.n_psd = 0
        self._freqs = None

    def update(self, x: np.ndarray, x_hat: np.ndarray) -> None:
        """One chunk (n_channels, n) of source values and their reconstruction."""
        x = np.asarray(x, np.float64)
        e = np.asarray(x_hat, np.float64) - x
        m = x.shape[1]
        self._moments.add(x)
        self.sum_x += x.sum(axis=1)
        self.sum_x2 += (x**2).sum(axis=1)
        self.sum_e2 += (e**2).sum(axis=1)
        if m:
            self.max_e = np.maximum(self.max_e, np.abs(e).max(axis=1))
        seg = min(m, welch_segment(self.sfreq))
        if seg >= 16:
            from scipy.signal import welch  # here: scipy.signal takes ~0.4 s to import

            f, px = welch(x, self.sfreq, nperseg=seg, axis=-1)
            _, py = welch(x_hat, self.sfreq, nperseg=seg, axis=-1)
            if self._freqs is None or self._freqs.shape != f.shape:
                if self.psd_x is None:
                    self._freqs, self.psd_x, self.psd_y = f, np.zeros_like(px), np.zeros_like(py)
                else:  # a short last chunk: a coarser spectrum; leave it out
                    return
            self.psd_x += px * m
            self.psd_y += py * m
            self.n_psd += m

    @property
    def n(self) -> int:
        """Samples seen per channel."""
        return self._moments.n

    def flat(self) -> np.ndarray:
        """Channels whose source is constant (PRDN undefined)."""
        rms = np.sqrt(self.sum_x2 / max(self.n, 1))
        return np.sqrt(self._moments.centred / max(self.n, 1)) <= FLAT_RELATIVE * rms

    def data_channels(self) -> tuple[np.ndarray, str]:
        """The channels the headline is measured over, and what they are."""
        usable = ~self.flat()
        data = np.array([t in DATA_TYPES or t == "data" for t in self.ch_types], bool) & usable
        if data.any():
            return data, "data channels"
        others = np.array([t not in STIM_TYPES for t in self.ch_types], bool) & usable
        return others, "every non-stim channel (no EEG/MEG/sEEG/ECoG channel)"

    def result(self) -> dict:
        """Per channel (lists), pooled (``overall``) and summarized (``headline``, ``by_type``,
        ``excluded``) figures."""
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
            bands = bands_for(self.sfreq) if self.psd_x is not None else {}
            band_power = {}
            for band, (lo, hi) in bands.items():
                sel = (self._freqs >= lo) & (self._freqs < hi)
                px, py = self.psd_x[:, sel].sum(axis=1), self.psd_y[:, sel].sum(axis=1)
                band_power[band] = (px, py)
                per[f"band_{band}"] = np.abs(py - px) / px
                if band in LEGACY_BANDS and BANDS[band][1] <= self.sfreq / 2:
                    overall[f"band_{band}"] = float(np.abs(py.sum() - px.sum()) / px.sum())
        flat = self.flat()
        prdn = np.where(flat, np.nan, per["prdn"])  # per_channel keeps what archives always stored
        data, scope = self.data_channels()
        headline = {"scope": scope, **self._summary(np.flatnonzero(data), prdn)}
        headline["bands"] = {b: _band_error(px[data], py[data]) for b, (px, py) in band_power.items()}
        by_type = {}
        for t in dict.fromkeys(self.ch_types):
            if t in STIM_TYPES:
                continue
            idx = np.flatnonzero((np.array(self.ch_types) == t) & ~flat)
            if idx.size:
                by_type[t] = self._summary(idx, prdn)
        excluded = {
            "stim": [self.ch_names[i] for i, t in enumerate(self.ch_types) if t in STIM_TYPES],
            "flat": [self.ch_names[i] for i in np.flatnonzero(flat) if self.ch_types[i] not in STIM_TYPES],
            "other_types": [self.ch_names[i] for i in np.flatnonzero(~data & ~flat) if self.ch_types[i] not in STIM_TYPES],
        }
        return {"overall": {k: _number(v) for k, v in overall.items()},
                "per_channel": {k: [_number(a) for a in v] for k, v in per.items()},
                "headline": headline, "by_type": by_type, "excluded": excluded,
                "bands_hz": {b: [lo, hi] for b, (lo, hi) in bands.items()}}

    def _summary(self, idx: np.ndarray, prdn: np.ndarray) -> dict:
        """Mean and worst PRDN, pooled RMSE and max |error| (per display unit) of channels ``idx``."""
        out = {"n_channels": int(idx.size), "prdn_mean": None, "prdn_worst": None, "worst_channel": None,
               "max_abs_error": {}, "max_error_channel": {}, "rmse": {}}
        finite = idx[np.isfinite(prdn[idx])]
        if finite.size:
            worst = int(finite[np.argmax(prdn[finite])])
            out.update(prdn_mean=float(prdn[finite].mean()), prdn_worst=float(prdn[worst]),
                       worst_channel=self.ch_names[worst])
        for unit in sorted({self.units[i] for i in idx}):
            of_unit = np.array([i for i in idx if self.units[i] == unit], int)
            label, factor = display_unit(unit)
            worst = int(of_unit[np.argmax(self.max_e[of_unit])])
            out["max_abs_error"][label] = float(self.max_e[worst] * factor)
            out["max_error_channel"][label] = self.ch_names[worst]
            out["rmse"][label] = float(np.sqrt(self.sum_e2[of_unit].sum() / (max(self.n, 1) * of_unit.size)) * factor)
        return out


def _band_error(px: np.ndarray, py: np.ndarray) -> float | None:
    """Σ|P̂ − P| / ΣP over channels: errors of opposite sign on two channels do not cancel."""
    total = float(px.sum())
    return float(np.abs(py - px).sum() / total) if total > 0 else None


def _number(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None
