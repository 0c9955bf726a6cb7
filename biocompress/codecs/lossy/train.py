"""Rate–distortion training of the autoencoder on recordings (CPU).

Each step takes random single-channel crops, in units of their channel's scale,
adds uniform noise of one quantization step to the latents (the training proxy of
rounding), and minimises ``bits/sample + λ · MSE`` with the rate from the learned
factorized prior. The step varies from batch to batch so that one model serves
every quality level (the levels scale the step).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .model import ConvAutoencoder
from .prior import FactorizedPrior

DEFAULT_ARCH = {"arch": "strided", "width": 96}  # the shipped model's (ConvAutoencoder keyword arguments)
WARMUP = 256  # samples at the start of a crop without loss (the stream's steady state is what counts)


@dataclass
class Recording:
    name: str
    sfreq: float
    x: np.ndarray  # float32 (n_channels, n), each channel in units of its scale
    group: str = ""  # recordings of one kind: batches draw kinds equally, however many files each has


@dataclass
class TrainConfig:
    minutes: float = 12.0
    batch: int = 32
    crop: int = 2048
    lam: float = 120.0
    threads: int = 0  # torch threads (0: torch's default)
    lr: float = 2e-3
    log2_step_range: tuple[float, float] = (-1.5, 1.5)
    seed: int = 0
    model: dict = field(default_factory=lambda: dict(DEFAULT_ARCH))


def channel_scale(x: np.ndarray) -> np.ndarray:
    """Per-channel scale used by the codec: the standard deviation (floored)."""
    return np.maximum(np.std(x, axis=-1), 1e-12)


def load_recordings(paths, progress=None, group: str = "", data_only: bool = False) -> list[Recording]:
    """Read recordings with MNE; each channel centred and divided by its scale.
    ``data_only``: only data channels (EEG, MEG, iEEG, …) that are not flat."""
    from ...io.source import open_raw

    out = []
    for p in paths:
        raw = open_raw(p)
        x = raw.get_data()
        if data_only:
            import mne

            picks = mne.pick_types(raw.info, meg=True, eeg=True, seeg=True, ecog=True, dbs=True, exclude=[])
            x = x[picks]
            x = x[np.std(x, axis=1) > 0]
        x = x - np.median(x, axis=1, keepdims=True)
        x = (x / channel_scale(x)[:, None]).astype(np.float32)
        out.append(Recording(Path(p).name, float(raw.info["sfreq"]), x, group))
        if progress:
            progress(1)
    return out


def _batch(recs: list[Recording], n: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    out = np.empty((n, 1, length), np.float32)
    groups: dict[str, list[Recording]] = {}
    for r in recs:
        groups.setdefault(r.group, []).append(r)
    kinds = list(groups.values())
    for i in range(n):
        pool = kinds[rng.integers(len(kinds))]
        r = pool[rng.integers(len(pool))]
        ch = rng.integers(r.x.shape[0])
        t0 = rng.integers(0, r.x.shape[1] - length)
        out[i, 0] = r.x[ch, t0 : t0 + length]
    return torch.from_numpy(out)


def rd_step(model: ConvAutoencoder, prior: FactorizedPrior, x: torch.Tensor, step: float, noisy: bool = True):
    """(bits per sample, MSE) of one batch; rounding instead of noise when ``noisy`` is False."""
    y, _ = model.encode(x)
    if noisy:
        y_hat = y + (torch.rand_like(y) - 0.5) * step
    else:
        y_hat = torch.round(y / step) * step
    x_hat, _ = model.decode(y_hat)
    d = model.delay
    err = x_hat[..., d + WARMUP :] - x[..., WARMUP : x.shape[-1] - d]
    bits = prior.bits(y_hat, step).sum() / (x.shape[0] * (x.shape[-1] - d))
    return bits, (err**2).mean()


def crop_length(cfg: TrainConfig, model: ConvAutoencoder | None = None) -> int:
    """Samples per training crop: the scored part, the warm-up and the decoder's delay."""
    model = model or ConvAutoencoder(**cfg.model)
    length = cfg.crop + model.delay + WARMUP
    return length - length % model.stride


def train(train_recs: list[Recording], val_recs: list[Recording], cfg: TrainConfig, log=print):
    """Train for ``cfg.minutes``; return (model, prior, history of validation points)."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    model = ConvAutoencoder(**cfg.model)
    prior = FactorizedPrior(model.config["latent"])
    params = list(model.parameters()) + list(prior.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    length = crop_length(cfg, model)
    val_x = _batch(val_recs, 96, length, np.random.default_rng(12345))
    start, history, step_i = time.monotonic(), [], 0
    budget = cfg.minutes * 60
    while (elapsed := time.monotonic() - start) < budget:
        frac = elapsed / budget
        for g in opt.param_groups:  # cosine decay to 5 %
            g["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        step = float(2.0 ** rng.uniform(*cfg.log2_step_range))
        bits, mse = rd_step(model, prior, _batch(train_recs, cfg.batch, length, rng), step)
        loss = bits + cfg.lam * mse
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        step_i += 1
        if step_i % 200 == 0:
            with torch.no_grad():
                vb, vm = rd_step(model, prior, val_x, 1.0, noisy=False)
            point = {"step": step_i, "minutes": elapsed / 60, "val_bits": float(vb),
                     "val_prdn": 100 * math.sqrt(float(vm))}
            history.append(point)
            log(f"step {step_i:6d}  {elapsed / 60:5.1f} min  train {bits.item():.3f} b/s, "
                f"MSE {mse.item():.4f}; validation (step 1, rounded) {point['val_bits']:.3f} b/s, "
                f"PRDN {point['val_prdn']:.1f} %")
    return model, prior, history


def train_folder(data_dir, output, *, validation=None, minutes: float = 12.0, log=print,
                 overwrite: bool = False) -> str:
    """``biocompress train``: recordings of a folder (validation: another folder, or every 5th
    recording, or the last of fewer than 5); writes the model file and returns its id."""
    from ...files.demo import recordings_in
    from ...errors import BadInputError
    from . import model_file

    data_dir, output = Path(data_dir), Path(output)
    if not data_dir.is_dir():
        raise BadInputError(data_dir, "not a folder of recordings")
    if output.suffix != ".pt":
        raise BadInputError(output, "model files end in .pt")
    from ...system.outputs import check_output

    check_output(output, [], force=overwrite, kind="file")  # before the minutes of training, not after
    files = recordings_in(data_dir)
    if validation is not None:
        train_files, val_files = files, recordings_in(Path(validation))
    else:
        val_files = files[4::5] if len(files) >= 5 else files[-1:] if len(files) > 1 else []
        train_files = [f for f in files if f not in val_files]
    if not train_files or not val_files:
        raise BadInputError(data_dir, f"need recordings to train and to validate on; found {len(files)} "
                            "(give --validation FOLDER, or at least 2 recordings)")
    cfg = TrainConfig(minutes=minutes)
    length = crop_length(cfg)
    train_recs = [r for r in load_recordings(train_files) if r.x.shape[1] > length]
    val_recs = [r for r in load_recordings(val_files) if r.x.shape[1] > length]
    if not train_recs or not val_recs:
        raise BadInputError(data_dir, f"recordings must be longer than {length} samples")
    log(f"training on {len(train_recs)} recordings, validating on {len(val_recs)}, {minutes:g} min")
    model, prior, history = train(train_recs, val_recs, cfg, log=log)
    return model_file.save(output, model, prior, {"trained_on": [f.name for f in train_files],
                                                  "validated_on": [f.name for f in val_files],
                                                  "minutes": minutes, "history": history})
