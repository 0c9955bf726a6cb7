"""A slow decoder of dwt-v2 / sdwt-v2 / sdwt-v3 coefficient streams written from docs/FORMAT.md
§8.15, §8.17 and §8.18 alone (a test helper, not a test file), on the range decoder of §8.11.2 as
``stream_reference`` implements it. It checks that the document describes the bitstream."""

from __future__ import annotations

import struct

from stream_reference import Corrupt, Decoder


def band_lengths(n: int, levels: int) -> list[int]:
    """§8.15: L = min(levels, dwt_max_level(n, 8)); lengths ⌈n/2^L⌉, ⌈n/2^L⌉, ⌈n/2^(L−1)⌉, …, ⌈n/2⌉."""
    max_level = 0
    while (n >> (max_level + 1)) >= 7:  # PyWavelets: floor(log2(n / (filter length − 1)))
        max_level += 1
    L = min(levels, max_level)
    if L == 0:
        return [n]
    return [-(-n // 2**L)] + [-(-n // 2**j) for j in range(L, 0, -1)]


class Decisions:
    def __init__(self, dec: Decoder):
        self.dec, self.f, self.s, self.n = dec, {}, {}, {}

    def __call__(self, c: int) -> int:
        f, s, n = self.f.get(c, 1 << 15), self.s.get(c, 1 << 15), self.n.get(c, 0)
        p1 = min(max((f + s) // 2, 32), 65536 - 32)
        p0 = 65536 - p1
        bit = self.dec.symbol([0, p0, 65536])
        a, b = min(4, (n + 1).bit_length()), min(6, (n + 1).bit_length())
        if bit:
            f, s = f + ((65536 - f) >> a), s + ((65536 - s) >> b)
        else:
            f, s = f - (f >> a), s - (s >> b)
        self.f[c], self.s[c], self.n[c] = f, s, min(n + 1, 255)
        return bit


def sub_band_offsets(payload: bytes, levels: int) -> list[int]:
    """§8.18: an sdwt-v3 payload's offsets, one signed byte per sub-band after the header."""
    n_rows, n = struct.unpack_from("<HI", payload)
    count = len(band_lengths(n, levels))
    return list(struct.unpack_from(f"<{count}b", payload, 6))


def decode_payload(payload: bytes, levels: int, offsets: bool = False, kept: list[int] | None = None
                   ) -> list[list[int]]:
    """Rows of coefficient integers of a dwt-v2 / sdwt-v2 payload (header, then §8.17's stream),
    or of an sdwt-v3 one (``offsets``: header, a byte per sub-band, then the same stream); of an
    sdwt-v4 one (§8.19) with its configuration's ``kept``: as sdwt-v3, Σ kept rows."""
    n_rows, n = struct.unpack_from("<HI", payload)
    if kept is not None:
        n_rows = sum(kept)
    lengths = band_lengths(n, levels)
    starts = [sum(lengths[:b]) for b in range(len(lengths) + 1)]
    dec = Decoder(payload[6 + (len(lengths) if offsets else 0) :])
    decision = Decisions(dec)
    classes = [[0] * len(lengths) for _ in range(n_rows)]
    rows = []
    for r in range(n_rows):
        q = [0] * starts[-1]
        for b, length in enumerate(lengths):
            kref = classes[r - 1][b] if r > 0 else (classes[r][b - 1] if b > 0 else 0)
            node = 1
            for _ in range(5):
                node = 2 * node + decision(32 * kref + node)
            K = classes[r][b] = node - 32
            if K == 0:
                continue
            s, kc = max(0, K - 13), min(K, 15)
            h1 = h2 = 0
            for i in range(length):
                if b == 0:
                    P = 0
                elif b == 1:
                    P = abs(q[starts[0] + i])
                else:
                    P = abs(q[starts[b - 1] + min(i >> 1, lengths[b - 1] - 1)])
                h = 0
                if decision(1024 + ((kc * 3 + min(h1, 2)) * 2 + min(h2, 1)) * 3 + min(P, 2)):
                    m = 0
                    while m < 14 and decision(1312 + (kc * 4 + min(h1, 3)) * 14 + m):
                        m += 1
                    if m == 14:
                        w = dec.wide()
                        if not 0 <= w <= 2**41:
                            raise Corrupt("wide")
                        m += w
                    h = 1 + m
                a = (h << s) | dec.bits(s)
                if a > 2**41:
                    raise Corrupt("magnitude")
                if a and dec.raw(1):
                    a = -a
                q[starts[b] + i] = a
                h2, h1 = h1, h
        rows.append(q)
    dec.check_end()
    return rows
