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

import numpy as np

from ..container import fingerprint
from ..codecs.base import WAVELET_IDS
from ..codecs.lossy import model_file
from ..codecs.lossy.qualities import QUALITY_PRDN, QUALITY_STEPS
from ..container.layout import DATA, MAX_BLOCK_ELEMENTS, put_text
from ..container.reader import Archive, sample_bytes
from ..container.packed import packed_cost
from ..container.writer import ArchiveWriter, json_dataset, round_floats
from ..errors import BadInputError, VerificationError
from .exact_fallback import GroupSizes, SizeTally, lossless_sizes
from .fidelity import FidelityMeter, bands_for, welch_segment
from ..io import scaling
from ..io.source import iter_samples, needs_whole_read
from ..progress import progress_bar
from ..stream.encoder import StreamEncoder
from ..codecs.lossy.rate import MARGIN, Moments, Stretches
from ..stream.lanes import StreamLane
from ..stream.plans import FAMILIES, exact_lanes, lossy_plan
from ..stream.sources import raw_chunks


TARGET_ATTEMPTS = 4  # --max-prdn: codings of the recording before its channels are stored exactly
FIGURE_DIGITS = 6  # significant digits of the stored fidelity figures (verify allows them 1e-3 relative)
BITRATE_ATTEMPTS, BITRATE_TOLERANCE = 3, 0.05  # --bitrate: codings at most; the last is kept whatever it took
BOUNDED_CODECS = ("nl-v1", "grid-v1", *WAVELET_IDS)  # a bound or step per channel, which rate control calibrates


def compress_lossy(raw, src_path, dst, *, mode: str, quality: int | None, max_error_uv: float | None,
                   model=None, overwrite: bool, block_samples: int, progress: bool, write_metadata,
                   max_prdn: float | None = None, bitrate: float | None = None):
    """Write the lossy archive and return its path; None, writing nothing, where coding every
    channel losslessly takes no more bytes, or where ``max_prdn`` could not be held otherwise
    (the caller then writes the lossless archive). ``bitrate``: coded bits per sample (every
    channel's samples), instead of a quality or a PRDN target."""
    n_ch, label = raw.info["nchan"], src_path.name if src_path else "recording"
    if not raw.n_times:  # nothing to approximate: the lossless archive is the smaller
        return None
    block_samples = max(256, min(block_samples, MAX_BLOCK_ELEMENTS // n_ch // 256 * 256))  # blocks span every channel
    whole = raw.get_data() if needs_whole_read(raw) else None
    first = whole[:, :block_samples] if whole is not None else raw.get_data(start=0, stop=min(raw.n_times, block_samples))
    _require_finite(first, 0, raw, src_path)
    model_path = model or model_file.DEFAULT_MODEL
    units = [int(ch["unit"]) for ch in raw.info["chs"]]  # channels of one unit share a scale
    _, _, meta = model_file.load(model_path)
    if max_prdn is not None and (mode != "lossy" or quality is not None or not 0 < max_prdn < 100):
        raise BadInputError(None, "max_prdn is a PRDN target in % (0 < P < 100) for mode lossy, instead of a "
                            f"quality; got {max_prdn!r} with mode {mode!r}, quality {quality!r}")
    if mode == "lossy" and max_prdn is None and bitrate is None and quality not in QUALITY_STEPS:
        raise BadInputError(None, f"quality must be one of {sorted(QUALITY_STEPS)}, got {quality!r}")
    if mode == "lossy" and quality is not None and max_prdn is None and bitrate is None:
        max_prdn = QUALITY_PRDN[quality]  # a quality names a PRDN target (codecs/lossy/qualities.py)
    if mode == "near-lossless" and (max_error_uv is None or not max_error_uv >= 0):
        raise BadInputError(None, f"--max-error must be a non-negative number of µV, got {max_error_uv!r}")
    recipe = scaling.recipe_for(raw)
    kinds = scaling.detect_kinds(recipe, first)
    stim = np.array([t == "stim" for t in raw.get_channel_types()])
    picks = np.arange(n_ch)

    def to_codes(x):
        try:
            return scaling.to_codes(recipe, x, picks, 0)
        except scaling.KindMismatch as exc:
            raise BadInputError(src_path, f"channels {exc.channels.tolist()} stop being integer-coded "
                                "later in the recording; their error cannot be bounded") from None
    plan_memo: dict = {}  # what each plan fits to the first block and the aim, the same for every attempt

    def make_plan(kinds=kinds, max_error_uv=max_error_uv):
        return lossy_plan(mode, first, kinds, recipe, stim, units, raw.ch_names, quality=quality,
                          max_error_uv=max_error_uv, model_path=model_path, model_id=meta["model_id"],
                          block=block_samples, to_codes=to_codes, where=src_path,
                          aim_prdn=None if max_prdn is None else max_prdn * tighten, delta_scale=delta_scale,
                          prefer_residual=prefer_residual, gains=gains,
                          aim_bits=None if bitrate is None else bits_aim, family=family,
                          n_blocks=-(-raw.n_times // block_samples), memo=plan_memo, stretches=stretches,
                          stretch_aim=None if stretches is None else max_prdn * tighten / MARGIN * stretch_share)

    def encode(lanes, writer):
        tally = SizeTally(lanes)
        with progress_bar(f"compress {label} ({mode})", raw.n_times, enabled=progress) as advance:
            def chunks():
                for chunk in raw_chunks(raw, block_samples, whole):
                    _require_finite(chunk.values, chunk.start, raw, src_path)
                    yield chunk
                    advance(chunk.stop - chunk.start)
            try:
                for block in StreamEncoder(lanes).encode(chunks()):
                    tally.add(block)
                    writer.add(block)
            except scaling.KindMismatch as exc:
                raise BadInputError(src_path, f"trigger channels {exc.channels.tolist()} change value kind later "
                                    "in the recording; compress it losslessly") from None
        return tally

    def attempt(publish_if):
        """One coding of the recording: (path, None) where ``publish_if(per-channel PRDN, bounded,
        bits per sample)`` accepts it (``bounded``: channels coded with a bound or step each, by one
        of BOUNDED_CODECS), else (None, (PRDN, that codec's id or None, bits)); (None, None) where
        lossless coding is the smaller."""
        plan = make_plan()
        step, bound_uv, deltas_si = plan.step, plan.max_error_uv, plan.deltas_si
        writer = ArchiveWriter(dst, mode=mode)
        try:
            tally = encode(plan.lanes, writer)
            exact, exact_kinds, saved = _smaller_exactly(raw, whole, tally, kinds, recipe, block_samples,
                                                         lossless_cache)
            if len(exact) == len(tally.groups):  # nothing left to code lossily: the lossless archive is the smaller
                writer.discard()
                return None, None
            if exact:  # code again: those groups through lossless lanes
                writer.discard()
                plan = make_plan()
                lanes = [ln for ln in plan.lanes if (ln.start, ln.stop) not in {(g.start, g.stop) for g in exact}]
                lanes += [ln for g in exact for ln in exact_lanes(exact_kinds, recipe, block_samples, g.start, g.stop)]
                lanes.sort(key=lambda lane: lane.start)
                for g in exact:
                    plan.kinds[g.start : g.stop] = exact_kinds[g.start : g.stop]
                writer = ArchiveWriter(dst, mode=mode)
                encode(lanes, writer)
            write_metadata(writer.h5, raw, recipe, plan.kinds, np.full(n_ch, raw.n_times, np.int64), src_path)
            g = writer.h5.create_group("lossy")
            put_text(g.attrs, "mode", mode)
            put_text(g.attrs, "model_id", meta["model_id"])
            g.attrs["step"] = step
            if exact:
                g.attrs["exact_channels"] = np.concatenate([np.arange(e.start, e.stop) for e in exact]).astype(np.int64)
            if quality is not None:
                g.attrs["quality"] = int(quality)
            if max_prdn is not None:
                g.attrs["max_prdn"] = float(max_prdn)
            if bitrate is not None:
                g.attrs["bitrate"] = float(bitrate)
            if bound_uv is not None:
                g.attrs["max_error_uv"] = float(bound_uv)
            if model is not None and meta["model_id"] != model_file.load()[2]["model_id"]:
                g.create_dataset("model", data=np.frombuffer(model_file.to_bytes(*model_file.load(model_path)), np.uint8))
            writer.finish({"n_samples": raw.n_times, "n_channels": n_ch, "sfreq": float(raw.info["sfreq"]),
                           "first_samp": int(raw.first_samp), "block_samples": block_samples, "samples_sha256": "",
                           "samples_hash_layout": "sha256 of float64 little-endian samples (decoded), time-major"})
            figures = _check(writer, raw, whole, block_samples, label, deltas_si, progress)
            if saved <= _lossy_extras(figures):  # what the lossy groups save does not pay for their figures
                writer.discard()
                return None, None
            ids = {lane.config.get("id") for lane in plan.lanes if isinstance(lane, StreamLane)}
            coder = FAMILIES.get(coder := next((i for i in BOUNDED_CODECS if i in ids), None), coder)
            bits = 8 * sum(row[6] for row in writer.section(DATA).index) / max(n_ch * raw.n_times, 1)
            published.update(coder=coder, bits=bits, ae_rival=plan.ae_rival)
            if not publish_if(figures["per_channel"]["prdn"], coder is not None, bits):
                writer.discard()
                return None, (figures["per_channel"]["prdn"], coder, bits)
            with writer.amend() as h5:
                put_text(h5["data"].attrs, "samples_sha256", figures.pop("sha256"))
                stats = figures.pop("fingerprint")
                if exact:
                    figures["stored_exactly"] = {
                        "channels": [raw.ch_names[c] for e in exact for c in range(e.start, e.stop)],
                        "groups": [e.as_dict() for e in exact],
                        "reason": "the lossless coding of these channels is no larger than their lossy coding"}
                if max_prdn is not None:
                    figures["target"] = {"max_prdn": float(max_prdn), "aimed_at": float(max_prdn * tighten)}
                if bitrate is not None:
                    figures["target"] = {"bitrate": float(bitrate), "achieved_bitrate": float(bits)}
                group = h5.create_group("fidelity")
                json_dataset(group, "json", figures, digits=FIGURE_DIGITS)
                fingerprint.write(group, stats, block_samples)
            return writer.publish(overwrite=overwrite or published.get("replaces_ours", False)), None
        except BaseException:
            writer.discard()
            raise

    tighten, delta_scale, calibrated, prefer_residual, gains = MARGIN, None, 0, False, None
    stretches = None if max_prdn is None else _stretches(raw, whole, block_samples, src_path)
    stretch_share = None if stretches is None else WHOLE_AIM if stretches.whole else SAMPLED_AIM
    family = None  # the bounded coder being calibrated ("ae-v1": the autoencoder only)
    bits_aim = bitrate  # --bitrate: the budget on the first block, scaled by what the whole recording took
    published = {}  # of the last coding judged: its bounded coder, bits per sample, whether the autoencoder was close

    def reach_target(start_family: str | None, beat_bits: float | None):
        """Codings toward ``max_prdn`` (calibrated as they go), starting from ``start_family``'s
        coder; the path of the one published, or None. ``beat_bits``: publish only a coding of
        fewer bits per sample (the target missed is then not stored exactly either: None)."""
        nonlocal tighten, delta_scale, calibrated, prefer_residual, gains, family
        tighten, delta_scale, calibrated, prefer_residual, gains = MARGIN, None, 0, False, None
        family, held = start_family, None  # held: the settings of a coding that kept every channel within the target
        held_bits = np.inf  # its bits per sample
        within_scale = over_scale = None  # the bounded coder's scales in the last coding within the target, over it
        overs = 0  # codings over the target since the last within it
        last_over = None  # a wavelet coder's last coding, over the target: its scales and worst PRDN
        smaller = lambda bits: beat_bits is None or bits < beat_bits  # noqa: E731
        for _ in range(TARGET_ATTEMPTS):
            def on_target(prdn, bounded, bits):
                # a low mean is accepted once the autoencoder's gains were calibrated; a bounded coder's
                # scales are searched further (below)
                worst, mean = _judged(prdn, stim)
                return worst <= max_prdn and smaller(bits) and (
                    mean >= LOW_MEAN * max_prdn or (not bounded and calibrated >= CALIBRATIONS))
            path, missed = attempt(on_target)
            if missed is None:
                return path
            prdn, coder, bits = missed
            worst, _ = _judged(prdn, stim)
            if worst <= max_prdn:  # every channel within the target, the mean low: the smallest kept in reserve
                if bits < held_bits:
                    held, held_bits = (tighten, delta_scale, prefer_residual, gains, family), bits
            # each channel scaled by how far the whole recording's PRDN fell from the aim: its bound (a
            # bounded residual) or its scale in the autoencoder (where one step serves a run of channels)
            share = stretch_share if coder in WAVELET_IDS and stretches is not None else MARGIN
            ratio = np.array([share * max_prdn / p if p else 1.0 for p in prdn])
            if coder is not None:
                scales = np.ones(n_ch) if delta_scale is None else delta_scale
                wavelet_over = worst > max_prdn and coder in WAVELET_IDS and stretches is not None
                last_over = (scales, worst) if wavelet_over else None
                if coder != family:
                    within_scale, overs = None, 0
                if worst <= max_prdn:
                    within_scale, overs = scales, 0
                else:
                    over_scale, overs = scales, overs + 1
                if within_scale is not None and overs >= 2:
                    # over the target twice running (the channels' errors move one another: a rotation, a
                    # shared sketch): halfway, in log, back to the last scales that kept every channel within it
                    delta_scale = np.sqrt(within_scale * over_scale)
                else:
                    move = np.clip(ratio, 0.25, 3.0)
                    if coder in WAVELET_IDS:  # coarse steps zero whole sub-bands: PRDN falls slower than the step
                        move = np.where(move < 1, move**2, move)
                    delta_scale = scales * move
                family = coder  # calibrated: the same coder again
                calibrated += 1
            elif (worst <= max_prdn or gains is not None) and calibrated < CALIBRATIONS:
                gains = (1.0 if gains is None else gains) * np.clip(ratio, 0.5, 3.0)
                calibrated += 1
            elif not prefer_residual:  # one step for a run missed: a bound per channel
                prefer_residual = True
            else:  # aim lower
                tighten *= min(0.85, max_prdn / max(worst, 1e-12))
        within = lambda prdn, bounded, bits: _judged(prdn, stim)[0] <= max_prdn and smaller(bits)  # noqa: E731
        if held is not None:  # no coding met both: the smallest that kept every channel within the target
            tighten, delta_scale, prefer_residual, gains, family = held
            path, missed = attempt(within)
            if missed is None:
                return path
        elif last_over is not None:  # a wavelet coder just over the target: every channel finer, once
            scales, worst = last_over
            delta_scale = scales * (stretch_share * max_prdn / worst) ** 2
            path, missed = attempt(within)
            if missed is None:
                return path
        return None  # the target was not held on the whole recording: store every channel exactly

    lossless_cache: dict = {}  # channel groups → their lossless sizes: the same for every attempt
    if bitrate is not None:
        for i in range(BITRATE_ATTEMPTS):
            last = i == BITRATE_ATTEMPTS - 1
            path, missed = attempt(lambda prdn, bounded, bits: last or abs(bits - bitrate) <= BITRATE_TOLERANCE
                                   * bitrate)
            if missed is None:
                return path
            bits_aim *= bitrate / max(missed[2], 1e-9)
    if max_prdn is None:
        return attempt(lambda prdn, bounded, bits: True)[0]
    path = reach_target(None, None)
    if path is None or not published["ae_rival"] or published["coder"] not in WAVELET_IDS:
        return path
    # the wavelet coder won on the first block, the autoencoder close behind: the autoencoder's
    # calibration (each channel's scale) can still make it the smaller on the whole recording
    published["replaces_ours"] = True  # the archive at dst is the one just written
    return reach_target("ae-v1", published["bits"]) or path


CALIBRATION_VALUES = 1 << 24  # --max-prdn: samples × channels the wavelet coders are fitted to...
WHOLE_AIM = 0.99  # ... aiming at this much of P where that is the whole recording (what is judged)...
SAMPLED_AIM = 0.96  # ... or this much, where it is blocks spread over a longer one


def _stretches(raw, whole, block: int, src_path) -> Stretches:
    """Blocks of the recording, cut as the stream cuts them, for the wavelet coders' calibration:
    every block where they hold at most CALIBRATION_VALUES values, else that many spread evenly
    (with the whole recording's moments, read block by block); with the bands the fidelity
    figures measure, whose power the wavelet coders' band gains keep."""
    n_ch, n = raw.info["nchan"], raw.n_times
    sfreq = float(raw.info["sfreq"])
    bands = np.array([(lo / sfreq, hi / sfreq) for lo, hi in bands_for(sfreq).values()]).reshape(-1, 2)
    bands = bands if len(bands) else None
    starts = np.arange(0, n, block)
    keep = max(1, CALIBRATION_VALUES // max(n_ch * block, 1))

    def read(t0: int) -> np.ndarray:
        x = whole[:, t0 : t0 + block] if whole is not None else raw.get_data(start=t0, stop=min(n, t0 + block))
        _require_finite(x, t0, raw, src_path)
        return x

    if starts.size <= keep:
        return Stretches([read(t0) for t0 in starts.tolist()], whole=True, bands=bands, segment=welch_segment(sfreq))
    chosen = set(np.unique(starts[np.linspace(0, starts.size - 1, keep).round().astype(int)]).tolist())
    blocks, moments = [], Moments(n_ch)
    for t0 in starts.tolist():
        x = read(t0)
        moments.add(x)
        if t0 in chosen:
            blocks.append(x)
    return Stretches(blocks, whole=False, moments=moments, bands=bands, segment=welch_segment(sfreq))


LOW_MEAN = 0.8  # --max-prdn: channels are calibrated again when their mean PRDN is below this × P...
CALIBRATIONS = 2  # ... at most this many times (a channel's bound or scale moves by 3× at most each time)


def _judged(prdn: list, stim: np.ndarray) -> tuple[float, float]:
    """The worst and the mean PRDN over the non-trigger channels where it is defined."""
    values = [p for p, s in zip(prdn, stim) if p is not None and not s]
    return max(values, default=0.0), (float(np.mean(values)) if values else 0.0)


def _lossy_extras(figures: dict) -> int:
    """About the bytes a lossy archive holds that a lossless one does not: its fidelity figures
    (packed, as stored), their fingerprint (float64 per window and channel) and ``/lossy``."""
    stored = {k: v for k, v in figures.items() if k not in ("sha256", "fingerprint")}
    fingerprint_bytes = 16 * sum(np.size(w) // 2 for w in figures.get("fingerprint", ()))
    return packed_cost(json.dumps(round_floats(stored, FIGURE_DIGITS)).encode()) + fingerprint_bytes + LOSSY_GROUP_BYTES


LOSSY_GROUP_BYTES = 200  # /lossy's attributes and the HDF5 structure of /lossy and /fidelity


def _smaller_exactly(raw, whole, tally: SizeTally, kinds, recipe, block: int, cache: dict):
    """The lossy groups that lossless coding stores in no more bytes (with the value kinds it
    needs), and the bytes the other groups save by being lossy."""
    if not tally.groups:
        return [], kinds, 0
    key = tuple(tally.groups)
    if key not in cache:
        cache[key] = lossless_sizes(raw, whole, tally.groups, kinds, recipe, block)
    exact_bytes, exact_kinds = cache[key]
    sizes = [GroupSizes(a, b, tally.bytes[(a, b)], exact_bytes[(a, b)]) for a, b in tally.groups]
    saved = sum(g.lossless_bytes - g.lossy_bytes for g in sizes if not g.exact_is_smaller)
    return [g for g in sizes if g.exact_is_smaller], exact_kinds, saved


def _require_finite(x: np.ndarray, t0: int, raw, src_path) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        ch, t = (int(i) for i in np.argwhere(bad)[0])
        raise BadInputError(src_path, f"lossy modes need finite samples; channel {raw.ch_names[ch]} holds "
                            f"{x[ch, t]} at sample {t0 + t}; use --mode lossless (it keeps NaN and inf exactly)")


def _check(writer, raw, whole, block, label, deltas_si, progress) -> dict:
    """Decode the new archive against the source: fidelity, hash, and the error bound."""
    meter = FidelityMeter(raw.info["nchan"], float(raw.info["sfreq"]), raw.ch_names, raw.get_channel_types(),
                          [ch["unit"] for ch in raw.info["chs"]])
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
