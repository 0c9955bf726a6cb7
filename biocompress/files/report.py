"""A picture of a lossy archive against its source: traces, spectra, errors and figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..container.reader import Archive
from ..errors import BadInputError
from ..system.outputs import check_output, temporary, writing
from ..system.signals import check_interrupted
from .fidelity import BANDS, FidelityMeter
from ..io.source import open_raw

SECONDS_SHOWN = 5.0


def make_report(archive, source, output, n_channels: int = 4, *, overwrite: bool = False) -> dict:
    """Write a PNG comparing the archive's samples with the source's; return the fidelity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import welch

    output = Path(output)
    if output.suffix.lower() != ".png":
        raise BadInputError(output, "the report is a PNG: give the output a .png name")
    check_output(output, [archive, source], force=overwrite, kind="file")
    raw = open_raw(source)
    with Archive(archive) as arc:
        if arc.n_samples != raw.n_times or arc.n_channels != raw.info["nchan"]:
            raise BadInputError(source, f"not the archive's source: {raw.info['nchan']} ch × {raw.n_times} samples, "
                                f"archive {arc.n_channels} × {arc.n_samples}")
        y = arc.read()
        mode = arc.mode
    x = raw.get_data()
    sfreq = float(raw.info["sfreq"])
    meter = FidelityMeter(x.shape[0], sfreq)
    meter.update(x, y)
    fid = meter.result()
    o = fid["overall"]
    err_uv = (y - x) * 1e6
    picks = _pick_channels(x, n_channels)
    n_show = min(x.shape[1], int(SECONDS_SHOWN * sfreq))
    start = max(0, (x.shape[1] - n_show) // 2)
    t = (start + np.arange(n_show)) / sfreq

    fig = plt.figure(figsize=(14, 9))
    grid = fig.add_gridspec(3, 2, height_ratios=[2.2, 1.4, 1.2])
    ax = fig.add_subplot(grid[0, :])
    for k, ch in enumerate(picks):  # each trace scaled to its own range, one above the other
        a, b = x[ch, start : start + n_show] * 1e6, y[ch, start : start + n_show] * 1e6
        span = max(np.ptp(a), 1e-9)
        ax.plot(t, (a - a.mean()) / span - 1.2 * k, color="0.2", lw=0.9, label="source" if k == 0 else None)
        ax.plot(t, (b - a.mean()) / span - 1.2 * k, color="tab:red", lw=0.7, alpha=0.8,
                label="reconstruction" if k == 0 else None)
        ax.text(t[0], -1.2 * k, f"{raw.ch_names[ch]}\n{span:.3g} µV ", ha="right", va="center", fontsize=8)
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{Path(archive).name} ({mode}) against {Path(source).name}")

    ax = fig.add_subplot(grid[1, 0])
    seg = min(x.shape[1], int(4 * sfreq))
    f, px = welch(x * 1e6, sfreq, nperseg=seg)
    _, py = welch(y * 1e6, sfreq, nperseg=seg)
    _, pe = welch(err_uv, sfreq, nperseg=seg)
    for p, label, color in ((px, "source", "0.2"), (py, "reconstruction", "tab:red"), (pe, "error", "tab:blue")):
        ax.semilogy(f, p.mean(axis=0), label=label, color=color, lw=1)
    for name in ("delta", "alpha", "gamma"):  # every other band shaded
        ax.axvspan(*BANDS[name], color="0.92", zorder=0)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("PSD (µV²/Hz), channel mean")
    ax.set_xlim(0, min(sfreq / 2, 100))
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[1, 1])
    lim = max(float(np.percentile(np.abs(err_uv), 99.9)), 1e-9)
    ax.hist(np.clip(err_uv.ravel(), -lim, lim), bins=101, color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel("error (µV), all channels")
    ax.set_ylabel("samples")

    ax = fig.add_subplot(grid[2, :])
    ax.axis("off")
    lines = [f"PRD {o['prd']:.2f} %   PRDN {o['prdn']:.2f} %   SNR {o['snr_db']:.1f} dB   "
             f"RMSE {o['rmse_uv']:.3f} µV   max |error| {o['max_abs_error_uv']:.3f} µV",
             "relative band-power error: " + "   ".join(
                 f"{b} {100 * o[f'band_{b}']:.2f} %" for b in BANDS if o.get(f"band_{b}") is not None),
             "per channel PRDN (%):"]
    per = [f"{raw.ch_names[i][:10]:>10s} {v:5.1f}" for i, v in enumerate(fid["per_channel"]["prdn"][:48])
           if v is not None]
    lines += ["  ".join(per[i : i + 8]) for i in range(0, len(per), 8)] + (["…"] if x.shape[0] > 48 else [])
    ax.text(0.0, 0.9, "\n".join(lines), va="top", family="monospace", fontsize=9, wrap=True)
    fig.tight_layout()
    tmp = temporary(output)
    try:
        with writing(output):
            fig.savefig(tmp, dpi=100, format="png")
        check_interrupted()
        tmp.replace(output)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return fid


def _pick_channels(x: np.ndarray, n: int) -> list[int]:
    """A few channels spread over the montage."""
    return sorted({int(i) for i in np.linspace(0, x.shape[0] - 1, min(n, x.shape[0]))})
