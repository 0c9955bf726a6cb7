"""What an archive says about a stream besides its blocks, known before its first sample.

A live recording's journal starts with this description (its HEADER frame) and a
network stream's handshake carries it: it holds everything ``write_description`` and the
``/data``, ``/lossy`` and ``/times`` attributes need, as plain JSON (no pickle).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import mne
import numpy as np

from ..errors import CorruptArchiveError
from ..io import metadata, scaling
from .integrity import DAMAGE

MODES = ("lossless", "lossy", "near-lossless")
VERSION = 1  # of this JSON layout


@dataclass
class StreamDescription:
    """A stream's description.

    ``kinds``: the archive's value kind per channel (``lossy`` where the autoencoder codes
    it); ``lossy``: the ``/lossy`` attributes (mode, model_id, step, quality or max_error_uv)
    and ``lossy_model`` a user-trained model's bytes (``/lossy/model``); ``clock``: the
    timestamps' clock (e.g. "lsl") when every sample carries one; ``stream``: the source
    stream's name, type, source_id, XML header… (kept in the provenance).
    """

    info: mne.Info
    recipe: scaling.Recipe
    kinds: np.ndarray
    mode: str = "lossless"
    block_samples: int = 16384
    source: dict = field(default_factory=dict)
    annotations: mne.Annotations | None = None
    lossy: dict | None = None
    lossy_model: bytes | None = None
    clock: str | None = None
    stream: dict | None = None

    def __post_init__(self):
        self.kinds = np.asarray(self.kinds, np.int8)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.kinds.shape != (self.n_channels,):
            raise ValueError(f"{self.kinds.size} value kinds for {self.n_channels} channels")
        if (self.mode == "lossless") != (self.lossy is None):
            raise ValueError("lossy attributes go with (and only with) the lossy modes")

    @property
    def n_channels(self) -> int:
        return int(self.info["nchan"])

    @property
    def sfreq(self) -> float:
        return float(self.info["sfreq"])

    @property
    def ch_types(self) -> list[str]:
        return self.info.get_channel_types()

    @property
    def has_timestamps(self) -> bool:
        return self.clock is not None

    def to_dict(self) -> dict:
        annotations = self.annotations if self.annotations is not None else mne.Annotations([], [], [])
        ann = metadata.annotations_to_dict(annotations)
        return {
            "version": VERSION,
            "mode": self.mode,
            "block_samples": int(self.block_samples),
            "info": metadata.info_to_dict(self.info, self.ch_types),
            "recipe": {"steps": list(self.recipe.steps),
                       "params": {k: np.asarray(v, np.float64).tolist() for k, v in self.recipe.params.items()}},
            "kinds": self.kinds.tolist(),
            "source": self.source,
            "annotations": {**ann, "onset": ann["onset"].tolist(), "duration": ann["duration"].tolist()},
            "lossy": self.lossy,
            "lossy_model": base64.b64encode(self.lossy_model).decode("ascii") if self.lossy_model else None,
            "clock": self.clock,
            "stream": self.stream,
        }

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "StreamDescription":
        """The description a HEADER frame (untrusted) holds; CorruptArchiveError if it is not one."""
        try:
            if d.get("version") != VERSION:
                raise ValueError(f"description version {d.get('version')!r} is not {VERSION}")
            info = metadata.info_from_dict(d["info"])
            n = info["nchan"]
            steps = tuple(str(s) for s in d["recipe"]["steps"])
            if any(s.split(":")[0] not in ("mul", "add") or len(s.split(":")) != 2 for s in steps):
                raise ValueError(f"unknown scaling step in {steps}")
            params = {str(k): np.asarray(v, np.float64) for k, v in d["recipe"]["params"].items()}
            if set(params) != {s.split(":")[1] for s in steps} or any(p.shape != (n,) for p in params.values()):
                raise ValueError("scaling parameters do not match the steps and channels")
            kinds = np.asarray(d["kinds"], np.int64)
            if kinds.shape != (n,) or ((kinds < 0) | (kinds >= len(scaling.VALUE_KINDS))).any():
                raise ValueError("value kinds are not one known kind per channel")
            block = d["block_samples"]
            if not isinstance(block, int) or block < 1:
                raise ValueError(f"block_samples {block!r} is impossible")
            for key in ("source", "lossy", "stream"):
                if d.get(key) is not None and not isinstance(d[key], dict):
                    raise ValueError(f"{key} is not an object")
            model = d.get("lossy_model")
            ann = d.get("annotations") or {"onset": [], "duration": [], "description": [], "ch_names": [],
                                           "orig_time": None}
            return cls(info=info, recipe=scaling.Recipe(steps, params), kinds=kinds.astype(np.int8),
                       mode=d["mode"], block_samples=block, source=d.get("source") or {},
                       annotations=metadata.annotations_from_dict(ann), lossy=d.get("lossy"),
                       lossy_model=base64.b64decode(model, validate=True) if model else None,
                       clock=None if d.get("clock") is None else str(d["clock"]), stream=d.get("stream"))
        except (*DAMAGE, AttributeError, binascii.Error) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CorruptArchiveError(f"{where}: stream description is malformed ({detail})") from None
