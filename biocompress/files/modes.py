"""The compression modes and the check of their settings, without the coders: a batch's or
the command line's options are checked before anything heavy (numba, SciPy) is imported."""

from __future__ import annotations

MODES = ("lossless", "lossy", "near-lossless")


MAX_BITRATE = 64.0  # bits per sample: a float64 sample, stored as it is


def mode_problem(mode: str, quality, max_error_uv, max_prdn=None, bitrate=None) -> str | None:
    """What is wrong with a mode and its settings (as the command line names them); None if nothing."""
    if mode not in MODES:
        return f"--mode must be one of {', '.join(MODES)}; got {mode!r}"
    if bitrate is not None and (mode != "lossy" or quality is not None or max_prdn is not None):
        return "--bitrate is a target for --mode lossy, instead of --quality or --max-prdn"
    if bitrate is not None and not 0 < bitrate <= MAX_BITRATE:
        return f"--bitrate is in bits per sample, above 0 and at most {MAX_BITRATE:g}; got {bitrate}"
    if max_prdn is not None and (mode != "lossy" or quality is not None):
        return "--max-prdn is a target for --mode lossy, instead of --quality"
    if max_prdn is not None and not 0 < max_prdn < 100:
        return f"--max-prdn is a PRDN in % between 0 and 100; got {max_prdn}"
    if mode == "lossy" and quality is None and max_prdn is None and bitrate is None:
        return "--mode lossy needs --quality 1…5, --max-prdn P or --bitrate B"
    if mode == "near-lossless" and max_error_uv is None:
        return "--mode near-lossless needs --max-error µV"
    if mode == "lossless" and (quality is not None or max_error_uv is not None):
        return "--quality and --max-error apply to --mode lossy / near-lossless"
    return None
