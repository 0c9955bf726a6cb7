"""A slow lpc-s1 decoder written from docs/FORMAT.md §8.4 and §8.11 alone (a test helper, not a
test file): plain Python integers, wrapped to int64 where the format says so. It checks that
the document describes the bitstream the codec writes."""

from __future__ import annotations

import bisect

import numpy as np

M64, M32 = (1 << 64) - 1, (1 << 32) - 1


def i64(v: int) -> int:
    v &= M64
    return v - (1 << 64) if v >> 63 else v


def _shaped_probs(c: int, sh: int) -> np.ndarray:
    """§8.4's shaped table (normative code, float64)."""
    shapes = (0.75, 1.25, 2.0)
    ratio = (0.5935092778940371, 1.3029767363855875, 1.7724538509055159)
    s = 2.0 ** ((c - 8) / 4.0)
    k = max(0, int(np.ceil(np.log2(s / 32.0))))
    step = 1 << k
    K = int(np.ceil(20.0 * s / step)) + 1
    beta, alpha = shapes[sh], s * ratio[sh]
    centre = lambda j: np.abs(j * float(step) + (step - 1) / 2.0)  # noqa: E731
    dens = np.exp(-((centre(np.arange(-K, K + 1)) / alpha) ** beta))
    outside = np.concatenate([np.arange(-4 * K - 4, -K), np.arange(K + 1, 4 * K + 4)])
    tail = float(np.exp(-((centre(outside) / alpha) ** beta)).sum())
    probs = np.append(dens, max(tail, 1e-9 * float(dens.sum())))
    probs = np.maximum(probs / probs.sum(), 1e-12)
    return probs / probs.sum(), K, k


_TABLES: dict = {}


def table(key: int):
    """(cum, K, k) of key = class·3 + shape (§8.11.2)."""
    if key not in _TABLES:
        probs, K, k = _shaped_probs(key // 3, key % 3)
        f = np.floor(probs * (65536 - probs.size)).astype(np.int64) + 1
        f[int(np.argmax(f))] += 65536 - int(f.sum())
        _TABLES[key] = ([0] + np.cumsum(f).tolist(), K, k)
    return _TABLES[key]


class Corrupt(Exception):
    pass


class Decoder:
    def __init__(self, data: bytes):
        self.data, self.pos, self.over = data, 0, 0
        self.code = self.window = 0
        for _ in range(4):
            b = self._byte()
            self.code = (self.code << 8) | b
            self.window = (self.window << 8) | b
        self.range = M32

    def _byte(self) -> int:
        if self.pos < len(self.data):
            b = self.data[self.pos]
        else:
            b, self.over = 0, self.over + 1
        self.pos += 1
        return b

    def _normalize(self):
        while self.range < 1 << 24:
            b = self._byte()
            self.code = ((self.code << 8) | b) & M32
            self.window = ((self.window << 8) | b) & M32
            self.range <<= 8

    def symbol(self, cum) -> int:
        r = self.range >> 16
        v = min(self.code // r, 65535)
        s = bisect.bisect_right(cum, v) - 1  # the largest s with cum[s] ≤ v
        self.code -= r * cum[s]
        self.range = r * (cum[s + 1] - cum[s])
        self._normalize()
        return s

    def raw(self, k: int) -> int:
        r = self.range >> k
        v = min(self.code // r, (1 << k) - 1)
        self.code -= v * r
        self.range = r
        self._normalize()
        return v

    def bits(self, k: int) -> int:
        v, j = 0, 0
        while 16 * j < k:
            v |= self.raw(min(16, k - 16 * j)) << (16 * j)
            j += 1
        return v

    def wide(self) -> int:
        L = min(self.bits(7), 64)
        u = self.bits(L)
        return i64((u >> 1) ^ -(u & 1))

    def value(self, key: int) -> int:
        cum, K, k = table(key)
        s = self.symbol(cum)
        hi = self.wide() if s == 2 * K + 1 else s - K
        return i64((hi << k) | self.bits(k)) if k else hi

    def check_end(self):
        if self.pos - self.over != len(self.data) or self.over > 16:
            raise Corrupt("end")
        if self.over < 16 and self.data and self.data[-1] == 0:
            raise Corrupt("zero end")
        low = (self.window - self.code) & M32
        for j in range(5):
            unit = 1 << (32 - 8 * j)
            v = -(-low // unit) * unit
            if v < low + self.range:
                if v & M32 != self.window:
                    raise Corrupt("not canonical")
                return


def qlog(m: int) -> int:
    if m < 1:
        return 0
    b = m.bit_length() - 1
    t = m >> (b - 15) if b >= 15 else m << (15 - b)
    return 4 * b + sum(t >= T for T in (38968, 46341, 55109))


def klass(m: int, bias: int) -> int:
    return min(max(qlog(m) - 8 + bias, 0), 139)


def update(m: int, v: int, rate: int) -> int:
    return m + (((min(abs(v), 1 << 40) << 4) - m) >> rate)


def start_mean(c: int) -> int:
    b, j = divmod(c + 8, 4)
    return -(-(1 << b) * (32768, 38968, 46341, 55109)[j] // 32768)


def row(d: Decoder, n: int) -> list[int]:
    k0 = d.bits(9)
    if k0 >= 420:
        raise Corrupt("row key")
    m, out = start_mean(k0 // 3), []
    for _ in range(n):
        v = d.value(klass(m, 0) * 3 + k0 % 3)
        out.append(v)
        m = update(m, v, 1)
    return out


def varint(data: bytes, pos: int):
    v, i = 0, 0
    while True:
        b = data[pos + i]
        v |= (b & 0x7F) << (7 * i)
        i += 1
        if not b & 0x80:
            return v, pos + i


def fresh(n_ch: int) -> dict:
    return {"n_ch": n_ch, "since": 0, "seq": 0, "n": 0,
            "ch": [dict(hist=[0] * 32, r_last=0, step=1, base=0, p=0, form=0, prec=0, coef=[0] * 32, centre=0,
                        refs=[], taps=[], bias=0, shape=0, rate=2, lms=0, m=0, w=[0] * 16, h=[0] * 16)
                   for _ in range(n_ch)]}


def predictor(ch: dict):
    """(q, shift, c0, nested) of §8.11.4 step 3."""
    p = ch["p"]
    if ch["form"] == 0:
        q, shift, nested = ch["coef"][:p], ch["prec"], {}
    else:
        P, alpha, nested = ch["prec"], [], {}
        for m in range(p):
            u = ch["coef"][m]
            num, s = u * (3 * (1 << 2 * P) - u * u), 3 * P + 1 - 24
            kappa = i64((num + (1 << (s - 1))) >> s) if s > 0 else i64(num << -s)
            alpha = [i64(alpha[i] + ((kappa * alpha[m - 1 - i] + (1 << 23)) >> 24)) for i in range(m)] + [kappa]
            nested[m + 1] = [i64(-a) for a in alpha]
        q, shift = nested.get(p, []), 24
    return q, shift, nested


def c0_of(centre: int, q: list[int], shift: int) -> int:
    return i64(centre * ((1 << shift) - sum(q))) if q else centre


def decode_block(data: bytes, state: dict | None):
    kind = data[0] & 3
    if kind == 2:
        count, pos = varint(data, 1)
        out, st = [], None
        for _ in range(count):
            size, pos = varint(data, pos)
            x, st = decode_block(data[pos : pos + size], st)
            pos += size
            out.append(x)
        return np.concatenate(out, axis=1), st
    key = kind == 0
    if key:
        n_ch, pos = varint(data, 1)
        n, pos = varint(data, pos)
        st = fresh(n_ch)
    else:
        if (data[0] >> 3) != (state["seq"] + 1) % 32:
            raise Corrupt("seq")
        n, pos = (state["n"], 1) if data[0] & 4 else varint(data, 1)
        st = {**state, "ch": [dict(c, hist=list(c["hist"]), coef=list(c["coef"]), refs=list(c["refs"]),
                                   taps=list(c["taps"]), w=list(c["w"]), h=list(c["h"])) for c in state["ch"]]}
    chs = st["ch"]
    d = Decoder(data[pos:])
    masks = []
    for _ in chs:
        if key:
            masks.append(15)
        elif d.symbol([0, 1024, 65536]) == 0:
            masks.append(d.raw(4))
        else:
            masks.append(0)
    for c, (ch, mask) in enumerate(zip(chs, masks)):
        if mask & 1:
            ch["step"] = d.wide()
            ch["base"] = d.wide() if ch["step"] > 1 else 0
        if mask & 2:
            p = d.raw(6)
            ch["p"] = p
            if p > 0:
                ch["form"], ch["prec"] = d.raw(1), d.raw(6)
                delta = 0 if key else d.raw(1)
                a = row(d, p)
                ch["coef"] = [i64(ch["coef"][k] + a[k]) if delta else a[k] for k in range(p)] + [0] * (32 - p)
            else:
                ch["form"], ch["prec"], ch["coef"] = 0, 0, [0] * 32
            ch["centre"] = d.wide() if key else i64(ch["centre"] + d.wide())
        if mask & 4:
            j = d.raw(3)
            w = (c - 1).bit_length() if c > 1 else 0
            refs = [d.bits(w) for _ in range(j)]
            if j:
                delta = 0 if key else d.raw(1)
                t = row(d, 3 * j)
                ch["taps"] = [i64(ch["taps"][i] + t[i]) if delta else t[i] for i in range(3 * j)]
            ch["refs"] = refs
        if mask & 8:
            ch["bias"], ch["shape"], ch["rate"], ch["lms"] = d.raw(4) - 4, d.raw(2), d.raw(2) + 2, d.raw(3)
            if key:
                ch["m"] = start_mean(d.raw(8))
    f = []
    for ch in chs:
        vals = []
        for _ in range(n):
            v = d.value(klass(ch["m"], ch["bias"]) * 3 + ch["shape"])
            vals.append(v)
            ch["m"] = update(ch["m"], v, ch["rate"])
        f.append(vals)
    d.check_end()
    e = []
    for ch, fc in zip(chs, f):  # 1. sign-sign LMS
        if not ch["lms"]:
            e.append(list(fc))
            continue
        mu, w, h, out = 1 << (ch["lms"] - 1), ch["w"], ch["h"], []
        for ft in fc:
            pred = i64(8192 + sum(w[k] * h[k] for k in range(16))) >> 14
            et = i64(ft + pred)
            out.append(et)
            if ft:
                sg = 1 if ft > 0 else -1
                for k in range(16):
                    w[k] = i64(w[k] + sg * mu * ((h[k] > 0) - (h[k] < 0)))
            h[:] = [et] + h[:15]
        e.append(out)
    r = [[0] * n for _ in chs]
    for c, ch in enumerate(chs):  # 2. cross-channel
        taps = ch["taps"]
        for t in range(n):
            acc = 2048
            for a, j in enumerate(ch["refs"]):
                before = r[j][t - 1] if t > 0 else chs[j]["r_last"]
                after = r[j][t + 1] if t + 1 < n else 0
                acc += taps[3 * a] * before + taps[3 * a + 1] * r[j][t] + taps[3 * a + 2] * after
            r[c][t] = i64(e[c][t] + (i64(acc) >> 12))
    x = np.empty((len(chs), n), np.int64)
    for c, ch in enumerate(chs):  # 3.-5. predictor, synthesis, codes
        q, shift, nested = predictor(ch)
        c0 = c0_of(ch["centre"], q, shift)
        half = 1 << (shift - 1) if shift > 0 else 0
        y = [(v - ch["base"]) // ch["step"] for v in ch["hist"]]
        for t in range(n):
            g = st["since"] + t
            if g == 0:
                pred = ch["centre"]
            elif g < ch["p"]:
                if ch["form"] == 0:
                    pred = y[-1]
                else:
                    qg = nested[g]
                    pred = i64(1 << 23) + c0_of(ch["centre"], qg, 24) + sum(qg[k] * y[-1 - k] for k in range(g))
                    pred = i64(pred) >> 24
            else:
                pred = i64(half + c0 + sum(q[k] * y[-1 - k] for k in range(ch["p"]))) >> shift
            y.append(i64(r[c][t] + pred))
        for t in range(n):
            x[c, t] = i64(y[32 + t] * ch["step"] + ch["base"])
        ch["hist"] = (ch["hist"] + x[c].tolist())[-32:]
        if n:
            ch["r_last"] = r[c][n - 1]
    st["since"] += n
    st["seq"] = 0 if key else (st["seq"] + 1) % 32
    st["n"] = n
    return x, st
