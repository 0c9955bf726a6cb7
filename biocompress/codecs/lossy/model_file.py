"""Model files: the autoencoder's config and weights, its learned prior, and how it was made.

A model is named by ``model_id``, a hash of its config and weights, which archives
store. Models ship inside the package (``biocompress/models/*.pt``), the default one
and every earlier default, so that archives written with them stay readable; a
user's model is stored inside the archives that use it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ...errors import BadInputError
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
    path = Path(path)
    mid = model_id(model)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"format": "biocompress-ae", "config": model.config, "state": model.state_dict(),
                "prior": prior.state_dict(), "meta": {**meta, "model_id": mid}}, tmp)
    tmp.replace(path)
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
            blob = torch.load(path, map_location="cpu", weights_only=True)
            model = ConvAutoencoder(**blob["config"])
            model.load_state_dict(blob["state"])
            prior = FactorizedPrior(model.config["latent"])
            prior.load_state_dict(blob["prior"])
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
            raise BadInputError(path, f"not a biocompress model file ({exc})") from exc
        model.eval()
        meta = dict(blob.get("meta", {}))
        if meta.get("model_id") != model_id(model):
            raise BadInputError(path, "model weights do not match the id stored with them")
        _CACHE[key] = _BY_ID[meta["model_id"]] = (model, prior, meta)
    return _CACHE[key]


def load_bytes(blob: bytes, where: str = "archive") -> tuple:
    """Load a model file's bytes (a model stored inside an archive) and remember it by id."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        f.write(blob)
        f.flush()
        try:
            return load(f.name)
        finally:
            _CACHE.pop(str(Path(f.name).resolve()), None)


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
