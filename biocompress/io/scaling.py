"""Exact mapping between MNE's float64 samples and the integers a format stored.

MNE turns stored samples ``v`` into float64 with a reader-specific sequence of
float operations (EDF: ``((v * cal + offset) * unit) * cals``; FIF: ``v * cals``).
A :class:`Recipe` replays that sequence operation for operation, so the
reconstruction is bitwise identical, and inverts it to recover ``v``.

Every channel gets a *value kind*:

``int``  ``v`` is an integer code in int32 range (EDF/BDF digital values, int FIF, ...)
``f32``  ``v`` is a float32 sample (float FIF, EEGLAB, BrainVision float, ANT CNT)
``f64``  anything else: the float64 value itself is stored
``int-native``  an EDF/BDF signal MNE resamples: its integer codes are stored at the
        signal's own rate and MNE's view is rebuilt by :mod:`.edf_native`
``lossy``  a lossy archive's approximate MNE float64 values themselves (recipe ignored)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..codecs.float_codes import codes_to_f32, codes_to_f64, f32_to_codes, f64_to_codes

VALUE_KINDS = ("int", "f32", "f64", "int-native", "lossy")
NATIVE = 3
LOSSY = 4
INT32_LIMIT = 2**31 - 1
_ANT_UNITS = {"uv": 1e-6, "µv": 1e-6}


class KindMismatch(Exception):
    """Some channels no longer satisfy the value kind chosen for them."""

    def __init__(self, channels):
        self.channels = np.asarray(channels)
        super().__init__(f"value kind does not hold for channels {self.channels.tolist()}")


@dataclass
class Recipe:
    """Per-channel float operations MNE applies to stored samples.

    ``steps`` names operations in order, each ``"mul:NAME"`` or ``"add:NAME"``
    with ``params[NAME]`` a float64 array with one value per channel.
    """

    steps: tuple[str, ...]
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def forward(self, v: np.ndarray, picks) -> np.ndarray:
        """Stored values (n_picks, n) → MNE float64, same operations as MNE."""
        x = np.array(v, dtype=np.float64)  # a copy, made once (also from integer codes)
        for step in self.steps:
            op, name = step.split(":")
            p = self.params[name][picks, np.newaxis]
            if op == "mul":
                x *= p
            else:
                x += p
        return x

    def inverse(self, x: np.ndarray, picks) -> np.ndarray:
        """MNE float64 → approximate stored values (exact after rounding/casting)."""
        v = np.array(x, dtype=np.float64)
        for step in reversed(self.steps):
            op, name = step.split(":")
            p = self.params[name][picks, np.newaxis]
            if op == "mul":
                with np.errstate(divide="ignore", invalid="ignore"):
                    v /= p
            else:
                v -= p
        return v


def recipe_for(raw) -> Recipe:
    """The operation sequence ``raw``'s reader applies, with its parameters."""
    cals = np.asarray(raw._cals, dtype=np.float64)
    extras = raw._raw_extras[0] if raw._raw_extras else None
    extras = extras if isinstance(extras, dict) else {}
    name = type(raw).__name__
    if name in ("RawEDF", "RawBDF") and {"cal", "offsets", "units"} <= extras.keys():
        return Recipe(
            ("mul:a", "add:b", "mul:c", "mul:e"),
            {
                "a": np.asarray(extras["cal"], np.float64).copy(),
                "b": np.asarray(extras["offsets"], np.float64).copy(),
                "c": np.asarray(extras["units"], np.float64).copy(),
                "e": cals,
            },
        )
    if name == "RawKIT" and "conv_factor" in extras:
        a = np.ones(len(cals))
        conv = np.asarray(extras["conv_factor"], np.float64).ravel()
        a[: len(conv)] = conv
        return Recipe(("mul:a", "mul:e"), {"a": a, "e": cals})
    if name == "RawANT" and "orig_ch_units" in extras:
        c = np.array([_ANT_UNITS.get(str(u).lower(), 1.0) for u in extras["orig_ch_units"]])
        return Recipe(("mul:c", "mul:e"), {"c": c, "e": cals})
    return Recipe(("mul:e",), {"e": cals})


def value_per_code(recipe: Recipe, n_channels: int) -> np.ndarray:
    """MNE units (V, T, …) per integer code, per channel (recipes are affine in the code)."""
    picks = np.arange(n_channels)
    one = recipe.forward(np.ones((n_channels, 1)), picks)[:, 0]
    zero = recipe.forward(np.zeros((n_channels, 1)), picks)[:, 0]
    return np.abs(one - zero)


def _same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row bitwise equality of two float64 arrays (NaN payloads and -0.0 included)."""
    return (a.view(np.int64) == b.view(np.int64)).all(axis=-1)


def _int_candidates(recipe: Recipe, x: np.ndarray, picks):
    v = recipe.inverse(x, picks)  # a new array: rounded in place
    np.rint(v, out=v)
    finite = np.isfinite(v)
    rows_ok = finite.all(axis=-1)
    if not rows_ok.all():
        v[~finite] = 0  # those rows fail; their codes are never used
    rows_ok &= (np.abs(v) <= INT32_LIMIT).all(axis=-1)
    codes = v.astype(np.int64)
    ok = rows_ok & _same_bits(recipe.forward(codes, picks), x)
    return codes, ok


def _f32_candidates(recipe: Recipe, x: np.ndarray, picks):
    with np.errstate(over="ignore", invalid="ignore"):
        f = recipe.inverse(x, picks).astype(np.float32)
    ok = _same_bits(recipe.forward(f, picks), x)
    return f, ok


def detect_kinds(recipe: Recipe, x: np.ndarray, picks=None) -> np.ndarray:
    """Best value kind per channel of ``x`` (n_channels, n): index into VALUE_KINDS."""
    picks = np.arange(x.shape[0]) if picks is None else np.asarray(picks)
    kinds = np.full(x.shape[0], 2, dtype=np.int8)
    _, is_int = _int_candidates(recipe, x, picks)
    kinds[is_int] = 0
    rest = ~is_int
    if rest.any():
        _, is_f32 = _f32_candidates(recipe, x[rest], picks[rest])
        kinds[np.flatnonzero(rest)[is_f32]] = 1
    return kinds


def to_codes(recipe: Recipe, x: np.ndarray, picks, kind: int) -> np.ndarray:
    """Codes for channels ``picks`` whose samples are ``x``, all of value kind ``kind``.

    Raises KindMismatch naming the channels for which the kind does not hold exactly.
    """
    picks = np.asarray(picks)
    if kind == 0:
        codes, ok = _int_candidates(recipe, x, picks)
    elif kind == 1:
        f, ok = _f32_candidates(recipe, x, picks)
        codes = f32_to_codes(f)
    else:
        return f64_to_codes(x)
    if not ok.all():
        raise KindMismatch(picks[~ok])
    return codes


def codes_of_stored(stored: np.ndarray, kind: int) -> np.ndarray | None:
    """Codes of kind ``kind`` straight from samples as a stream delivered them, where the
    recipe's image of ``stored`` is what :func:`to_codes` would code (float32 samples as f32
    codes; integers, or integral floats, within int32 as int codes); None where it cannot
    tell (then :func:`to_codes` decides, from the values)."""
    if kind == 1 and stored.dtype == np.float32:
        return f32_to_codes(stored)
    if kind != 0:
        return None
    if stored.dtype.kind in "iu" and stored.dtype.itemsize <= 4 and stored.dtype != np.uint32:
        return stored.astype(np.int64)
    if stored.dtype.kind == "f" and stored.size:
        with np.errstate(invalid="ignore"):
            codes = stored.astype(np.int64)
            bits = np.dtype(f"i{stored.dtype.itemsize}")
            # bitwise: NaN, ±inf, fractions and -0.0 (which code 0 would turn into +0.0) fail
            if np.array_equal(codes.astype(stored.dtype).view(bits), stored.view(bits)) \
                    and int(np.abs(codes).max()) <= INT32_LIMIT:
                return codes
    return None


def from_codes(recipe: Recipe, codes: np.ndarray, picks, kind: int) -> np.ndarray:
    """Inverse of :func:`to_codes`: bitwise MNE float64 samples."""
    if kind == LOSSY:
        return np.asarray(codes, np.float64)
    if kind == 0:
        return recipe.forward(codes, picks)
    if kind == 1:
        return recipe.forward(codes_to_f32(codes), picks)
    return codes_to_f64(codes)
