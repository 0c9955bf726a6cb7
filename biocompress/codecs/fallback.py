"""The smaller of a predictive codec's payload and a dictionary coder's, for blocks that repeat.

A block the predictive codec codes in :data:`TRY_BELOW_BITS` bits per sample or fewer is
unusually predictable: a flat or synthetic signal, where exact repeats are likely. Only
then is it also coded with ``lzma-v1``, and the smaller payload kept; recorded EEG (4–8 bits
per sample) never pays for the second attempt.
"""

from __future__ import annotations

import numpy as np

TRY_BELOW_BITS = 3.0
_INTEGER_CODECS = {"lpc-v1", "lpc-v2", "lpc-v3", "lpc-v4"}


def smaller_of(config: dict, codes: np.ndarray, payload: bytes) -> tuple[dict, bytes]:
    """(config, payload) of the smaller coding of ``codes``: the one given, or lzma-v1's."""
    if config.get("id") not in _INTEGER_CODECS or codes.size == 0 or 8 * len(payload) > TRY_BELOW_BITS * codes.size:
        return config, payload
    from .lossless.lzma_codec import LZMACodec

    other = LZMACodec()
    alternative = other.encode(codes)
    if len(alternative) < len(payload):
        return other.get_config(), alternative
    return config, payload
