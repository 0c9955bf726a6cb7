"""compress() for the lossy modes.

* ``lossy``: MNE's values through the autoencoder codec at a quality 1…5 (quality 5 of
  integer-coded recordings: the near-lossless coder, with a bound of 2.6 % of the RMS).
* ``near-lossless``: the recording's integer codes through the autoencoder plus a
  bounded residual: every sample within ``max_error_uv`` of the source.

The stream is encoded in one pass, block by block, exactly as a live acquisition
would be. The archive is then decoded, compared with the source (fidelity figures,
and the error bound for near-lossless), and only then renamed into place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ..container import fingerprint
from ..codecs.lossy import model_file
from ..codecs.lossy.ae_codec import QUALITY_STEPS, AECodec
from ..codecs.lossy.near_lossless import NearLosslessCodec
from ..codecs.lossy.spatial import Spatial
from ..container.layout import MAX_BLOCK_ELEMENTS, put_text
from ..container.reader import Archive, sample_bytes
from ..container.writer import ArchiveWriter, json_dataset
from ..errors import BadInputError, VerificationError
from .fidelity import FidelityMeter
from ..io import scaling
from ..io.scaling import value_per_code
from ..io.source import iter_samples, needs_whole_read
from ..progress import progress_bar

SKETCH_STEP_PER_DELTA = 20.0  # near-lossless: autoencoder step ≈ 20 error bounds / RMS (validation sweep)
# Lossy qualities reached with a bounded residual (integer-coded recordings): |error| ≤ this × the RMS
QUALITY_BOUND = {5: 0.026}


def compress_lossy(raw, src_path, dst, *, mode: str, quality: int | None, max_error_uv: float | None,
                   model=None, overwrite: bool, block_samples: int, progress: bool, write_metadata):
    n_ch, label = raw.info["nchan"], src_path.name if src_path else "recording"
    block_samples = max(256, min(block_samples, MAX_BLOCK_ELEMENTS // n_ch // 256 * 256))  # blocks span every channel
    whole = raw.get_data() if needs_whole_read(raw) else None
    first = whole[:, :block_samples] if whole is not None else raw.get_data(start=0, stop=min(raw.n_times, block_samples))
    _require_finite(first, 0, raw, src_path)
    model_path = model or model_file.DEFAULT_MODEL
    units = [int(ch["unit"]) for ch in raw.info["chs"]]  # channels of one unit share a scale
    _, _, meta = model_file.load(model_path)
    if mode == "lossy" and quality not in QUALITY_STEPS:
        raise BadInputError(None, f"quality must be one of {sorted(QUALITY_STEPS)}, got {quality!r}")
    if mode == "near-lossless" and (max_error_uv is None or not max_error_uv >= 0):
        raise BadInputError(None, f"--max-error must be a non-negative number of µV, got {max_error_uv!r}")
    recipe = scaling.recipe_for(raw)
    kinds = scaling.detect_kinds(recipe, first)
    if mode == "lossy" and quality in QUALITY_BOUND and (kinds == 0).all():
        # the top quality is beyond the autoencoder alone: a bounded residual on the integer codes
        centred = first - np.median(first, axis=1, keepdims=True)
        max_error_uv = QUALITY_BOUND[quality] * float(np.sqrt(np.mean(centred**2))) * 1e6
    stim = np.array([t == "stim" for t in raw.get_channel_types()])
    if mode == "lossy" and quality not in QUALITY_BOUND or mode == "lossy" and (kinds[~stim] != 0).any():
        lanes, step = [], QUALITY_STEPS[quality]
        for a, b, is_stim in _runs(stim):
            if is_stim:  # trigger channels stay exact: event codes are not signals
                lanes.append(_LosslessLane(recipe, np.arange(a, b), int(kinds[a:b].max()), block_samples))
                continue
            ae = AECodec.for_stream(first[a:b], quality=quality, model_path=model_path, groups=units[a:b])
            lanes.append(_Lane(a, b, ae.get_config(), ae.stream(block_samples), lambda x, a=a, b=b: x[a:b]))
            kinds[a:b] = scaling.LOSSY
        deltas_si = None
    else:
        if (kinds != 0).any():
            bad = [raw.ch_names[i] for i in np.flatnonzero(kinds != 0)[:3]]
            raise BadInputError(src_path, f"near-lossless needs integer-coded samples; {int((kinds != 0).sum())} "
                                f"channel(s) are not (e.g. {bad}); use --mode lossless or lossy")
        per_code = value_per_code(recipe, n_ch)
        deltas = np.floor(max_error_uv * 1e-6 / per_code + 1e-9).astype(np.int64)
        deltas[stim] = 0  # trigger channels exact
        picks = np.arange(n_ch)
        codes0 = scaling.to_codes(recipe, first, picks, 0).astype(np.float64)
        values0 = codes0 * per_code[:, None]
        rms = max(float(np.sqrt(np.mean((values0 - np.median(values0, axis=1, keepdims=True)) ** 2))), 1e-30)
        step = float(np.clip(SKETCH_STEP_PER_DELTA * max_error_uv * 1e-6 / rms, 0.05, 64.0))
        spatial = Spatial.fit(values0, units)
        spatial.offsets /= per_code  # the sketch runs on codes: fold each channel's unit into its scale
        spatial.scales /= per_code
        sketch = {"id": AECodec.codec_id, "model": meta["model_id"], "step": step, "spatial": spatial.to_config()}
        codec = NearLosslessCodec(sketch, deltas.tolist())

        def to_stream(x):
            try:
                return scaling.to_codes(recipe, x, picks, 0)
            except scaling.KindMismatch as exc:
                raise BadInputError(src_path, f"channels {exc.channels.tolist()} stop being integer-coded "
                                    "later in the recording; their error cannot be bounded") from None
        lanes = [_Lane(0, n_ch, codec.get_config(), codec.stream(block_samples), to_stream)]
        deltas_si = deltas * per_code
    writer = ArchiveWriter(dst, mode=mode)
    try:
        with progress_bar(f"compress {label} ({mode})", raw.n_times, enabled=progress) as advance:
            for t0, t1, x in iter_samples(raw, block_samples, whole):
                _require_finite(x, t0, raw, src_path)
                for lane in lanes:
                    for a, b, payload in lane.stream.push(lane.select(x)):
                        writer.add_block(a, b, lane.start, lane.stop, lane.config, payload)
                advance(t1 - t0)
            for lane in lanes:
                for a, b, payload in lane.stream.finish():
                    writer.add_block(a, b, lane.start, lane.stop, lane.config, payload)
        write_metadata(writer.h5, raw, recipe, kinds, np.full(n_ch, raw.n_times, np.int64), src_path)
        g = writer.h5.create_group("lossy")
        put_text(g.attrs, "mode", mode)
        put_text(g.attrs, "model_id", meta["model_id"])
        g.attrs["step"] = step
        if quality is not None:
            g.attrs["quality"] = int(quality)
        if max_error_uv is not None:
            g.attrs["max_error_uv"] = float(max_error_uv)
        if model is not None and meta["model_id"] != model_file.load()[2]["model_id"]:
            g.create_dataset("model", data=np.frombuffer(model_file.to_bytes(*model_file.load(model_path)), np.uint8))
        writer.finish({"n_samples": raw.n_times, "n_channels": n_ch, "sfreq": float(raw.info["sfreq"]),
                       "first_samp": int(raw.first_samp), "block_samples": block_samples, "samples_sha256": "",
                       "samples_hash_layout": "sha256 of float64 little-endian samples (decoded), time-major"})
        figures = _check(writer, raw, whole, block_samples, label, deltas_si, progress)
        with writer.amend() as h5:
            put_text(h5["data"].attrs, "samples_sha256", figures.pop("sha256"))
            stats = figures.pop("fingerprint")
            group = h5.create_group("fidelity")
            json_dataset(group, "json", figures)
            fingerprint.write(group, stats, block_samples)
        return writer.publish(overwrite=overwrite)
    except BaseException:
        writer.discard()
        raise


def _require_finite(x: np.ndarray, t0: int, raw, src_path) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        ch, t = (int(i) for i in np.argwhere(bad)[0])
        raise BadInputError(src_path, f"lossy modes need finite samples; channel {raw.ch_names[ch]} holds "
                            f"{x[ch, t]} at sample {t0 + t}; use --mode lossless (it keeps NaN and inf exactly)")


@dataclass
class _Lane:
    """A contiguous run of channels and the stream encoder that codes it."""

    start: int
    stop: int
    config: dict
    stream: object  # push(x) / finish() → [(t0, t1, payload)]
    select: object  # chunk of every channel → what the stream takes


class _LosslessLane(_Lane):
    """Channels kept exact inside a lossy archive (triggers), coded like a lossless archive's."""

    def __init__(self, recipe, picks: np.ndarray, kind: int, block: int):
        from .compress import codec_for

        self.codec, self.recipe, self.picks, self.kind = codec_for(kind), recipe, picks, kind
        super().__init__(int(picks[0]), int(picks[-1]) + 1, self.codec.get_config(), self, lambda x: x[picks])
        self.t0 = 0

    def push(self, x: np.ndarray):
        try:
            codes = scaling.to_codes(self.recipe, x, self.picks, self.kind)
        except scaling.KindMismatch as exc:
            raise BadInputError(None, f"trigger channels {exc.channels.tolist()} change value kind later in the "
                                "recording; compress it losslessly") from None
        t0, self.t0 = self.t0, self.t0 + x.shape[1]
        return [(t0, self.t0, self.codec.encode(codes))]

    def finish(self):
        return []


def _runs(flags: np.ndarray):
    """(start, stop, flag) of each run of equal flags."""
    edges = [0] + [i for i in range(1, flags.size) if flags[i] != flags[i - 1]] + [flags.size]
    return [(a, b, bool(flags[a])) for a, b in zip(edges, edges[1:])]


def _check(writer, raw, whole, block, label, deltas_si, progress) -> dict:
    """Decode the new archive against the source: fidelity, hash, and the error bound."""
    meter = FidelityMeter(raw.info["nchan"], float(raw.info["sfreq"]))
    sha, stats = hashlib.sha256(), []
    with Archive(writer.tmp) as arc, progress_bar(f"verify {label}", raw.n_times, enabled=progress) as adv:
        for t0, t1, x in iter_samples(raw, block, whole):
            y = arc.read(t0, t1)
            meter.update(x, y)
            sha.update(sample_bytes(y))
            stats.append(fingerprint.window_stats(y))
            if deltas_si is not None:
                excess = np.abs(y - x) - deltas_si[:, None] * (1 + 1e-9)
                if (excess > 0).any():
                    ch = int(np.argwhere(excess > 0)[0][0])
                    raise VerificationError(f"{label}: channel {raw.ch_names[ch]} exceeds the error bound")
            adv(t1 - t0)
    out = meter.result()
    out["ch_names"] = list(raw.ch_names)
    out = json.loads(json.dumps(out))
    out["sha256"] = sha.hexdigest()
    out["fingerprint"] = stats
    return out
