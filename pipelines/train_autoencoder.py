"""Train the lossy autoencoder on a subject-disjoint split of the eegmat recordings.

    python pipelines/train_autoencoder.py [--corpus ../shared/corpus] [--minutes 12] [-o biocompress/models/ae1.pt]

Split by subject (never by file): subjects 00-11 train, 12-14 validation (reported
here), 15-17 held out for pipelines/bench_lossy.py. Prints validation
rate-distortion points as it goes and, at the end, one point per quality level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from biocompress.codecs.lossy import model_file
from biocompress.codecs.lossy.ae_codec import QUALITY_STEPS
from biocompress.codecs.lossy.train import DEFAULT_ARCH, TrainConfig, load_recordings, train

TRAIN = [f"Subject{i:02d}" for i in range(0, 12)]
VALIDATION = [f"Subject{i:02d}" for i in range(12, 15)]
TEST = [f"Subject{i:02d}" for i in range(15, 18)]


def split_files(corpus: Path, subjects: list[str]) -> list[Path]:
    return sorted(p for s in subjects for p in (corpus / "eegmat").glob(f"{s}_*.edf"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    p.add_argument("--minutes", type=float, default=TrainConfig.minutes)
    p.add_argument("--lam", type=float, default=TrainConfig.lam)
    p.add_argument("--model", default=json.dumps(DEFAULT_ARCH), help="JSON of ConvAutoencoder keyword arguments")
    p.add_argument("-o", "--output", type=Path, default=model_file.DEFAULT_MODEL)
    a = p.parse_args(argv)
    train_files, val_files = split_files(a.corpus, TRAIN), split_files(a.corpus, VALIDATION)
    if not train_files or not val_files:
        print(f"eegmat recordings not found under {a.corpus}; nothing trained", file=sys.stderr)
        return 2
    print(f"training on {len(train_files)} recordings ({TRAIN[0]}-{TRAIN[-1]}), validating on "
          f"{len(val_files)} ({VALIDATION[0]}-{VALIDATION[-1]}); {TEST[0]}-{TEST[-1]} held out")
    cfg = TrainConfig(minutes=a.minutes, lam=a.lam, model=json.loads(a.model))
    model, prior, history = train(load_recordings(train_files), load_recordings(val_files), cfg)
    a.output.parent.mkdir(parents=True, exist_ok=True)
    mid = model_file.save(a.output, model, prior, {
        "trained_on": [f.name for f in train_files], "validated_on": [f.name for f in val_files],
        "minutes": a.minutes, "lam": a.lam, "history": history})
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
