"""Order-preserving integer codes of float bit patterns (every pattern kept exactly)."""

from __future__ import annotations

import numpy as np


def f32_to_codes(f: np.ndarray) -> np.ndarray:
    """float32 → int64 codes whose order follows the float order (bits kept exactly)."""
    bits = np.ascontiguousarray(f, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def codes_to_f32(codes: np.ndarray) -> np.ndarray:
    c = np.asarray(codes, dtype=np.int64)
    bits = np.where(c < 0, c ^ 0x7FFFFFFF, c).astype(np.int32)
    return bits.view(np.float32)


def f64_to_codes(x: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    return np.where(bits < 0, bits ^ 0x7FFFFFFFFFFFFFFF, bits)


def codes_to_f64(codes: np.ndarray) -> np.ndarray:
    c = np.ascontiguousarray(codes, dtype=np.int64)
    return np.where(c < 0, c ^ 0x7FFFFFFFFFFFFFFF, c).view(np.float64)
