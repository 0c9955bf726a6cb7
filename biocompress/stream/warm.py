"""Loading the live codecs' compiled kernels before a stream starts.

numba loads a kernel from its cache the first time it runs (a second or so for the live
codecs together). Paid on the first chunk of a stream, that stall delays the first second of
samples by as much (the inlet buffers them meanwhile). Running each codec once on a few
synthetic samples before the inlet opens moves it out of the stream.
"""

from __future__ import annotations

import numpy as np


def warm_up_live_codecs(lossy: bool = False, model=None) -> None:
    """Encode and decode a few samples with the codecs of live streams (lpc-s1, float-xor-zstd,
    times-v1; with ``lossy``, the autoencoder of ``model`` (default: the shipped one), whose
    first fit, encode and decode take most of a second)."""
    from ..codecs.float_codes import f32_to_codes, f64_to_codes
    from ..codecs.lossless import FloatXorZstdCodec, LPCStreamCodec
    from ..codecs.times import TimesCodec

    rng = np.random.default_rng(0)
    ints = np.cumsum(rng.integers(-50, 51, (2, 600)), axis=1)
    chain = LPCStreamCodec(key_interval=300, update_interval=150)
    stream, state = chain.encode_stream(), None
    for t in range(0, ints.shape[1], 50):
        _, state = chain.decode_with(stream.encode(ints[:, t : t + 50]), state)
    floats = f32_to_codes((ints * 0.1).astype(np.float32))
    for width, codes in ((4, floats), (8, f64_to_codes(ints * 0.1))):
        codec = FloatXorZstdCodec(width, level=1)
        codec.decode(codec.encode(codes[:, :50]))
    times = TimesCodec()
    times.decode(times.encode(f64_to_codes(1000.0 + np.arange(600) / 500.0)[np.newaxis]))
    if lossy:
        from ..codecs import get_codec
        from ..codecs.lossy.ae_codec import AECodec

        x = np.cumsum(rng.standard_normal((3, 512)), axis=1) * 1e-5
        codec = AECodec.for_stream(x, quality=3, model_path=model)
        get_codec(codec.get_config()).decode(codec.encode(x))
