"""Per-step sums of float64 values that are exact, whatever the batches and processes the values came in."""
from __future__ import annotations

import math

import numpy as np

_EXP_OFFSET = 1100  # np.frexp's float64 exponents lie in -1073..1024
_EXP_BINS = 2200
_HALF = 26          # a 53-bit mantissa as two halves below 2**27
_CHUNK = 1 << 24    # values per extraction (n + 2 <= 2**25) and per bincount (2**24 halves < 2**27: sums < 2**51)
_TINY = 2.0 ** -900  # below it, values go to the bins directly (no extraction near the subnormals)
_BIN_ROWS = 1 << 11  # steps binned by one bincount: its (rows, _EXP_BINS) temporaries stay ~70 MB whatever T is
_SUM_BYTES = 2 * _EXP_BINS * 8  # per step: the int64 bins of the two mantissa halves


class _ExactSums:
    """Per-step sums of float64 values, exact: the result does not depend on how the values were split into
    batches or processes (the mean error of a torchrun evaluation equals the one-process one, bit for bit).

    The state is int64 bins per (step, binary exponent) holding the two 26-bit halves of 53-bit integer mantissas
    (a value is M * 2**(e - 53), np.frexp): integers add exactly across batches and ranks, and :meth:`values`
    rounds each step's sum once. A batch is first cut into a few exactly summable slices (Rump, Ogita and Oishi's
    ExtractVector, "Accurate floating-point summation", 2008): with sigma = 2**k, 2**(k - m) >= max |v| and
    2**m >= n + 2, q = (sigma + v) - sigma holds multiples of ulp(sigma) / 2 whose float sum is exact, and v - q is
    exact and below ulp(sigma); each slice's sum goes into the bins, so the bins see T numbers per slice, not every
    value. inf and NaN (an overflowing network) are summed apart, as np.sum would have them."""

    def __init__(self, T: int):
        self.T = T
        self.bins = np.zeros((2, T, _EXP_BINS), dtype=np.int64)
        self.special = np.zeros(T)

    def add(self, v: np.ndarray) -> None:
        v = np.array(v, dtype=np.float64).reshape(self.T, -1)
        fin = np.isfinite(v)
        if not fin.all():
            self.special += np.where(fin, 0.0, v).sum(1)
            v[~fin] = 0.0
        for i in range(0, v.shape[1], _CHUNK):
            self._extract(v[:, i:i + _CHUNK])

    def _extract(self, v: np.ndarray) -> None:
        m = (v.shape[1] + 1).bit_length()  # 2**m >= n + 2
        top = np.abs(v).max(1)
        huge = np.frexp(top)[1] + m > 1022  # sigma + v could overflow: straight to the bins
        if huge.any():
            self._bin(np.where(huge[:, None], v, 0.0))
            v = np.where(huge[:, None], 0.0, v)
            top[huge] = 0.0
        while True:
            live = top >= _TINY
            if not live.any():
                break
            sigma = np.where(live, np.ldexp(1.0, np.frexp(top)[1] + m), 0.0)[:, None]
            q = (sigma + v) - sigma
            q[~live] = 0.0
            v = v - q
            self._bin(q.sum(1)[:, None])  # exact: multiples of ulp(sigma) / 2 summing below sigma
            top = np.abs(v).max(1)
        if top.any():
            self._bin(v)

    def _bin(self, v: np.ndarray) -> None:
        """Add (T, n) values (n <= _CHUNK) to the bins, exactly."""
        mant, e = np.frexp(v)
        M = np.ldexp(mant, 53).astype(np.int64)  # exact: 53 significant bits at most (0 for a zero)
        for a in range(0, self.T, _BIN_ROWS):  # a block of steps at a time: bounded temporaries at any T
            r = min(_BIN_ROWS, self.T - a)
            key = (e[a:a + r] + _EXP_OFFSET + (np.arange(r) * _EXP_BINS)[:, None]).ravel()
            Mr = M[a:a + r]
            for h, part in enumerate((Mr >> _HALF, Mr & ((1 << _HALF) - 1))):  # M = hi * 2**26 + lo, signs included
                self.bins[h, a:a + r] += np.bincount(key, weights=part.ravel(),
                                                     minlength=r * _EXP_BINS).reshape(r, _EXP_BINS).astype(np.int64)

    def values(self) -> np.ndarray:
        out = np.zeros(self.T)
        for t in range(self.T):
            used = np.flatnonzero(self.bins[0, t] | self.bins[1, t])
            if len(used):
                low = int(used[0])
                total = sum(((int(self.bins[0, t, b]) << _HALF) + int(self.bins[1, t, b])) << (int(b) - low)
                            for b in used)
                shift = low - _EXP_OFFSET - 53  # total * 2**shift, rounded once (int / int is correctly rounded)
                try:
                    out[t] = float(total << shift) if shift >= 0 else total / (1 << -shift)
                except OverflowError:
                    out[t] = math.inf
        return out + self.special
