"""Model files: the autoencoder's config and weights, its learned prior, and how it was made.

A model is named by ``model_id``, a hash of its config and weights, which archives
store. Models ship inside the package (``biocompress/models/*.pt``), the default one
and every earlier default, so that archives written with them stay readable; a
user's model is stored inside the archives that use it, in a plain layout that
needs no unpickling (:func:`to_bytes`): ``BCMODEL1``, a u32 header length, a JSON
header (config, meta, tensor names and shapes) and the tensors as float32.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import torch

from ...errors import BadInputError, CorruptArchiveError
from .model import ConvAutoencoder
from .prior import FactorizedPrior

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL = MODELS_DIR / "ae1.pt"


def model_id(model: ConvAutoencoder) -> str:
    h = hashlib.sha256(json.dumps(model.config, sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save(path, model: ConvAutoencoder, prior: FactorizedPrior, meta: dict) -> str:
    """Write a model file (the archive layout of :func:`to_bytes`) through a temporary name."""
    from ...system.outputs import temporary
    from ...system.signals import check_interrupted

    path = Path(path)
    mid = model_id(model)
    tmp = temporary(path)
    try:
        tmp.write_bytes(to_bytes(model, prior, {**meta, "model_id": mid}))
        check_interrupted()
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return mid


_CACHE: dict[str, tuple] = {}  # resolved path → (model, prior, meta)
_BY_ID: dict[str, tuple] = {}  # model id → (model, prior, meta), every model loaded so far


def load(path=None) -> tuple[ConvAutoencoder, FactorizedPrior, dict]:
    """(model in eval mode, prior, meta) of a model file (default: the shipped model)."""
    path = Path(path or DEFAULT_MODEL)
    key = str(path.resolve())
    if key not in _CACHE:
        if not path.is_file():
            raise BadInputError(path, "no such model file")
        try:
            model, prior, meta = _read_model_file(path)
        except (CorruptArchiveError, OSError) as exc:
            raise BadInputError(path, f"not a biocompress model file ({exc})") from exc
        if meta.get("model_id") != model_id(model):
            raise BadInputError(path, "model weights do not match the id stored with them")
        _CACHE[key] = _BY_ID[meta["model_id"]] = (model, prior, meta)
    return _CACHE[key]


def _read_model_file(path: Path):
    blob = path.read_bytes()
    if blob[:8] == MAGIC:
        return from_bytes(blob, str(path))
    try:  # models saved before the plain layout: torch's zip format, tensors only
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = ConvAutoencoder(**check_config(saved["config"], str(path)))
        model.load_state_dict(saved["state"])
        prior = FactorizedPrior(model.config["latent"])
        prior.load_state_dict(saved["prior"])
    except CorruptArchiveError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise CorruptArchiveError(str(exc)) from exc
    return model.eval(), prior, dict(saved.get("meta", {}))


MAGIC = b"BCMODEL1"
MAX_MODEL_BYTES = 64 << 20
# Ranges a model config must lie in before a network is built from it: they bound its size.
CONFIG_RANGES = {"levels": (1, 8), "width": (1, 256), "latent": (1, 64), "kernel": (1, 64), "lookahead": (0, 32)}
ARCHS = ("conv", "strided")


def check_config(config, where: str) -> dict:
    """``config`` if it describes a network of bounded size, else CorruptArchiveError."""
    if not isinstance(config, dict) or set(config) - {*CONFIG_RANGES, "arch"}:
        raise CorruptArchiveError(f"{where}: model config {config!r} has unknown keys")
    for key, (lo, hi) in CONFIG_RANGES.items():
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi):
            raise CorruptArchiveError(f"{where}: model config {key} = {value!r} is outside {lo}..{hi}")
    if config.get("arch", "conv") not in ARCHS:
        raise CorruptArchiveError(f"{where}: model architecture {config.get('arch')!r} is unknown")
    return config


def to_bytes(model: ConvAutoencoder, prior: FactorizedPrior, meta: dict) -> bytes:
    """A model in the archive layout (no pickle)."""
    tensors = [(f"state.{k}", v) for k, v in model.state_dict().items()]
    tensors += [(f"prior.{k}", v) for k, v in prior.state_dict().items()]
    header = json.dumps({"config": model.config, "meta": meta,
                         "tensors": [[name, list(t.shape)] for name, t in tensors]}).encode("utf-8")
    body = b"".join(t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes() for _, t in tensors)
    return MAGIC + struct.pack("<I", len(header)) + header + body


def from_bytes(blob: bytes, where: str) -> tuple[ConvAutoencoder, FactorizedPrior, dict]:
    """Rebuild a model stored by :func:`to_bytes`; every size is checked before use."""
    if len(blob) < 12 or blob[:8] != MAGIC:
        raise CorruptArchiveError(f"{where}: stored model is not in the biocompress model layout")
    (n_head,) = struct.unpack_from("<I", blob, 8)
    if 12 + n_head > len(blob):
        raise CorruptArchiveError(f"{where}: stored model header is cut")
    try:
        head = json.loads(blob[12 : 12 + n_head].decode("utf-8"))
        config, meta, shapes = head["config"], dict(head["meta"]), head["tensors"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CorruptArchiveError(f"{where}: stored model header is unreadable ({exc})") from None
    model = ConvAutoencoder(**check_config(config, where))
    prior = FactorizedPrior(model.config["latent"])
    expected = [(f"state.{k}", list(v.shape)) for k, v in model.state_dict().items()]
    expected += [(f"prior.{k}", list(v.shape)) for k, v in prior.state_dict().items()]
    if [list(e) for e in shapes] != [list(e) for e in expected]:
        raise CorruptArchiveError(f"{where}: stored model tensors do not match its config")
    sizes = [int(np.prod(shape)) for _, shape in expected]
    body = blob[12 + n_head :]
    if len(body) != 4 * sum(sizes):
        raise CorruptArchiveError(f"{where}: stored model holds {len(body)} weight bytes, not {4 * sum(sizes)}")
    values = np.frombuffer(body, "<f4")
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    state = {name: torch.from_numpy(values[a:b].astype(np.float32).reshape(shape))
             for (name, shape), a, b in zip(expected, offsets[:-1], offsets[1:])}
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("state.")})
    prior.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("prior.")})
    model.eval()
    return model, prior, meta


def load_bytes(blob: bytes, where: str = "archive") -> tuple:
    """Load a model stored inside an archive and remember it by id."""
    model, prior, meta = from_bytes(blob, where)
    if meta.get("model_id") != model_id(model):
        raise CorruptArchiveError(f"{where}: stored model weights do not match their id")
    _BY_ID[meta["model_id"]] = (model, prior, meta)
    return model, prior, meta


def is_shipped(mid) -> bool:
    """Whether model ``mid`` is one of the package's own files."""
    for path in sorted(MODELS_DIR.glob("*.pt")):
        if load(path)[2]["model_id"] == mid:
            return True
    return False


def load_id(mid: str) -> tuple:
    """The model with id ``mid``: the shipped default, or one loaded before (e.g. from an archive)."""
    for path in sorted(MODELS_DIR.glob("*.pt")) if mid not in _BY_ID else ():
        load(path)
        if mid in _BY_ID:
            break
    if mid not in _BY_ID:
        from ...errors import CorruptArchiveError

        raise CorruptArchiveError(f"autoencoder model {mid} is not available (not the shipped default "
                                  f"and not stored in the archive)")
    return _BY_ID[mid]
