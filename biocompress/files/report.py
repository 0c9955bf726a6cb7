"""A picture of a lossy archive against its source: traces, spectra, errors and figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..container.reader import Archive
from ..errors import BadInputError
from ..system.outputs import check_output, temporary, writing
from ..system.signals import check_interrupted
from .fidelity import FidelityMeter, bands_for
from .fidelity_text import bands_line, by_type_lines, excluded_line, headline
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
        arc_block = int(arc.attrs.get("block_samples", 0))
    x = raw.get_data()
    sfreq = float(raw.info["sfreq"])
    meter = FidelityMeter(x.shape[0], sfreq, raw.ch_names, raw.get_channel_types(),
                          [ch["unit"] for ch in raw.info["chs"]])
    block = int(arc_block) if 1 <= arc_block <= x.shape[1] else x.shape[1]
    for t0 in range(0, x.shape[1], block):  # the windows compress measured in: the same figures as info's
        meter.update(x[:, t0 : t0 + block], y[:, t0 : t0 + block])
    fid = meter.result()
    data, _ = meter.data_channels()
    if not data.any():
        data = np.ones(x.shape[0], bool)
    err_uv = (y - x)[data] * 1e6
    picks = _pick_channels(x, data, n_channels)
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
    f, px = welch(x[data] * 1e6, sfreq, nperseg=seg)
    _, py = welch(y[data] * 1e6, sfreq, nperseg=seg)
    _, pe = welch(err_uv, sfreq, nperseg=seg)
    for p, label, color in ((px, "source", "0.2"), (py, "reconstruction", "tab:red"), (pe, "error", "tab:blue")):
        ax.semilogy(f, np.maximum(p.mean(axis=0), 1e-30), label=label, color=color, lw=1)
    for k, (lo, hi) in enumerate(bands_for(sfreq).values()):  # every other band shaded
        if k % 2 == 0:
            ax.axvspan(lo, hi, color="0.92", zorder=0)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("PSD (µV²/Hz), mean over data channels")
    ax.set_xlim(0, sfreq / 2)
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[1, 1])
    lim = max(float(np.percentile(np.abs(err_uv), 99.9)), 1e-9) if err_uv.size else 1e-9
    outside = int((np.abs(err_uv) > lim).sum())
    ax.hist(err_uv.ravel(), bins=101, range=(-lim, lim), color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel(f"error (µV), data channels; {outside:,} sample(s) beyond ±{lim:.3g} µV not shown")
    ax.set_ylabel("samples")

    ax = fig.add_subplot(grid[2, :])
    ax.axis("off")
    lines = [headline(fid) or "", *by_type_lines(fid), excluded_line(fid) or "",
             "relative band-power error: " + (bands_line(fid) or "n/a"), "per channel PRDN (%):"]
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


def _pick_channels(x: np.ndarray, data: np.ndarray, n: int) -> list[int]:
    """A few data channels spread over the montage, of typical spread (no flat or stim
    channel, no outlier scaled up or down to look like the others)."""
    idx = np.flatnonzero(data)
    spread = x[idx].std(axis=1)
    order = idx[np.argsort(np.abs(np.log(np.maximum(spread, 1e-300)) - np.log(max(np.median(spread), 1e-300))))]
    typical = np.sort(order[: max(n, len(order) // 2)])
    return sorted({int(typical[int(i)]) for i in np.linspace(0, len(typical) - 1, min(n, len(typical)))})
