"""The smaller of a block's codings, where a second attempt may pay.

- Integer codes: a block the predictive codec codes in :data:`TRY_BELOW_BITS` bits per
  sample or fewer, or in a fifth of the bits its range spans, is unusually predictable (a
  flat or synthetic signal, where exact repeats are likely); only then is it also coded with
  ``lzma-v1``. Recorded EEG (4–8 bits per sample over 12–24-bit ranges) never pays for the
  second attempt.
- float32 samples: ``float-lpc-v1`` predicts values on a grid well, but float32 values off any
  grid (µV computed in floating point by an acquisition program) often come out smaller
  through ``float-xor-zlib-v1``: both are tried.
"""

from __future__ import annotations

import numpy as np

TRY_BELOW_BITS = 3.0
TRY_BELOW_RANGE_FRACTION = 0.2
_INTEGER_CODECS = {"lpc-v1", "lpc-v2", "lpc-v3", "lpc-v4"}


def smaller_of(config: dict, codes: np.ndarray, payload: bytes) -> tuple[dict, bytes]:
    """(config, payload) of the smaller coding of ``codes``: the one given, or the alternative's."""
    if codes.size == 0:
        return config, payload
    if config.get("id") == "float-lpc-v1":
        from .lossless.float_codec import FloatXorCodec

        other = FloatXorCodec(4)
    elif config.get("id") in _INTEGER_CODECS and 8 * len(payload) <= _try_below(codes) * codes.size:
        from .lossless.lzma_codec import LZMACodec

        other = LZMACodec()
    else:
        return config, payload
    alternative = other.encode(codes)
    if len(alternative) < len(payload):
        return other.get_config(), alternative
    return config, payload


def _try_below(codes: np.ndarray) -> float:
    """Bits per sample under which a block is worth a dictionary coder's attempt."""
    span = int(codes.max()) - int(codes.min()) + 1
    return max(TRY_BELOW_BITS, TRY_BELOW_RANGE_FRACTION * span.bit_length())
