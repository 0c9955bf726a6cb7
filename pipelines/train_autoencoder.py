"""Train the lossy autoencoder on a subject-disjoint split of the corpus.

    python pipelines/train_autoencoder.py [--corpus ../shared/corpus] [--kinds all|eegmat] [--minutes 12]
                                          [-o biocompress/models/ae1.pt]

``--kinds eegmat``: eegmat subjects 00-11 train, 12-14 validate, 15-17 are held out for
the benchmarks. ``--kinds all`` (the shipped model) adds one recording of every other
kind that none of the benchmarks' held-out recordings shares a subject with: 128 Hz
scalp EEG, 160 Hz motor imagery (subject S002; S001 is held out), BioSemi at 512 Hz,
ANT at 1 kHz, CTF MEG with EEG at 1.2 kHz, BrainVision and MGH EEG at 5 kHz. Batches
draw every kind equally often, data channels only (no stim, no flat channel). The
recordings ``bench_lossy_kinds.py`` scores (eegmat 15-17, eegmmidb S001, the clinical,
sleep, EEGLAB, EGI, TMS, wearable, sEEG, ECoG and Neuromag files) never enter training.
Prints validation rate-distortion points as it goes and, at the end, one point per quality level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from biocompress.codecs.lossy import model_file
from biocompress.codecs.lossy.ae_codec import QUALITY_STEPS
from biocompress.codecs.lossy.train import DEFAULT_ARCH, TrainConfig, crop_length, load_recordings, train

TRAIN = [f"Subject{i:02d}" for i in range(0, 12)]
VALIDATION = [f"Subject{i:02d}" for i in range(12, 15)]
TEST = [f"Subject{i:02d}" for i in range(15, 18)]


OTHER_KINDS = {  # kind → recordings (relative to the corpus); none shares a subject with a held-out one
    "scalp 128 Hz": ["mne-testing-data/EDF/test_edf_overlapping_annotations.edf"],
    "motor imagery 160 Hz": ["eegmmidb/S002R01.edf"],
    "BioSemi 512 Hz": ["mne-testing-data/EDF/test_reduced.edf"],
    "ANT 1 kHz": ["mne-testing-data/antio/CA_208/test_CA_208.cnt"],
    "CTF MEG 1.2 kHz": ["mne-testing-data/CTF/testdata_ctf_short_discontinuous.ds_raw.fif"],
    "EEG 5 kHz": ["mne-testing-data/Brainvision/test_NO.vhdr", "mne-testing-data/SSS/mgh70_raw.fif"],
}


def split_files(corpus: Path, subjects: list[str]) -> list[Path]:
    return sorted(p for s in subjects for p in (corpus / "eegmat").glob(f"{s}_*.edf"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    p.add_argument("--minutes", type=float, default=TrainConfig.minutes)
    p.add_argument("--lam", type=float, default=TrainConfig.lam)
    p.add_argument("--model", default=json.dumps(DEFAULT_ARCH), help="JSON of ConvAutoencoder keyword arguments")
    p.add_argument("--kinds", choices=("all", "eegmat"), default="all")
    p.add_argument("--crop", type=int, default=TrainConfig.crop, help="scored samples per training crop")
    p.add_argument("--steps", type=float, nargs=2, default=TrainConfig.log2_step_range,
                   metavar=("LOG2_MIN", "LOG2_MAX"), help="range of the latent step (log2) drawn per batch")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves the other core free)")
    p.add_argument("-o", "--output", type=Path, default=model_file.DEFAULT_MODEL)
    a = p.parse_args(argv)
    train_files, val_files = split_files(a.corpus, TRAIN), split_files(a.corpus, VALIDATION)
    if not train_files or not val_files:
        print(f"eegmat recordings not found under {a.corpus}; nothing trained", file=sys.stderr)
        return 2
    print(f"training on {len(train_files)} recordings ({TRAIN[0]}-{TRAIN[-1]}), validating on "
          f"{len(val_files)} ({VALIDATION[0]}-{VALIDATION[-1]}); {TEST[0]}-{TEST[-1]} held out")
    cfg = TrainConfig(minutes=a.minutes, lam=a.lam, model=json.loads(a.model), crop=a.crop,
                      log2_step_range=tuple(a.steps), threads=a.threads)
    train_recs = load_recordings(train_files, group="eegmat")
    if a.kinds == "all":
        for kind, files in OTHER_KINDS.items():
            found = [a.corpus / f for f in files if (a.corpus / f).exists()]
            print(f"  {kind}: {', '.join(f.name for f in found) or 'not found, skipped'}")
            train_recs += load_recordings(found, group=kind, data_only=True)
            train_files += found
    length = crop_length(cfg)
    short = [r.name for r in train_recs if r.x.shape[1] <= length]
    if short:
        print(f"  shorter than a crop ({length} samples), skipped: {', '.join(short)}")
    train_recs = [r for r in train_recs if r.x.shape[1] > length]
    model, prior, history = train(train_recs, load_recordings(val_files, group="eegmat"), cfg)
    a.output.parent.mkdir(parents=True, exist_ok=True)
    mid = model_file.save(a.output, model, prior, {
        "trained_on": [f.name for f in train_files], "validated_on": [f.name for f in val_files],
        "minutes": a.minutes, "lam": a.lam, "kinds": a.kinds, "crop": a.crop, "log2_steps": list(a.steps),
        "history": history})
    print(f"model {mid} written to {a.output}")
    print("validation rate-distortion with the real coder (per recording: spatial transform, streaming blocks):")
    for quality, step in QUALITY_STEPS.items():
        bps, prdn = validation_point(a.output, val_files, step)
        print(f"  quality {quality} (step {step:g}): {bps:.3f} bits/sample = CR {16 / bps:.1f}, PRDN {prdn:.2f} %")
    return 0


def validation_point(model_path: Path, files: list[Path], step: float) -> tuple[float, float]:
    """(bits per sample, PRDN %) of the autoencoder alone at ``step`` over ``files``."""
    import numpy as np

    from biocompress.codecs.lossy.ae_codec import AECodec
    from biocompress.io.source import open_raw

    bits = samples = err2 = centred2 = 0.0
    for f in files:
        x = open_raw(f).get_data()
        codec = AECodec.for_stream(x[:, :16384], step=step, model_path=model_path)
        enc = codec.stream(16384)
        blocks = enc.push(x) + enc.finish()
        x_hat = np.concatenate([codec.decode(p) for _, _, p in blocks], axis=1)
        bits += 8 * sum(len(p) for _, _, p in blocks)
        samples += x.size
        err2 += float(((x_hat - x) ** 2).sum())
        centred2 += float(((x - x.mean(axis=1, keepdims=True)) ** 2).sum())
    return bits / samples, 100 * (err2 / centred2) ** 0.5


if __name__ == "__main__":
    sys.exit(main())
