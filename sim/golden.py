"""NumPy golden model of Octet's arithmetic, bit-exact with the RTL.

All functions compute in int64 and wrap to int32 exactly where the hardware (and TFLite's C++
reference) works in int32, so the results match the RTL and TFLite bit for bit. The semantics
are specified in ``docs/numerics.md``; constants come from :mod:`octet.numerics`.
"""

import numpy as np

from octet.numerics import INT8_MAX, INT8_MIN, INT32_MAX, INT32_MIN, RequantParams

__all__ = [
    "wrap_int32", "matmul_int32", "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot", "multiply_by_quantized_multiplier", "requantize",
    "quantize_multiplier", "array_cycles",
]


def wrap_int32(x):
    """Two's-complement wrap of an integer array to int32 (returned as int64)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + 2**31) & 0xFFFF_FFFF) - 2**31


def matmul_int32(a, b):
    """int8 (M, K) x int8 (K, N) -> int32 (M, N), accumulating modulo 2**32 like the array."""
    a = np.asarray(a)
    b = np.asarray(b)
    return wrap_int32(a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 arrays."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b  # |a*b| <= 2**62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division by 2**31 truncates toward zero.
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    overflow = (a == b) & (a == INT32_MIN)
    return np.where(overflow, INT32_MAX, wrap_int32(q))


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's RoundingDivideByPOT: divide by 2**exponent, rounding half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite's MultiplyByQuantizedMultiplier (double rounding, positive shift = left)."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier),
                                  right)


def requantize(acc, params: RequantParams):
    """int32 accumulators (..., N) -> int8 with per-channel parameters along the last axis."""
    acc = np.asarray(acc, dtype=np.int64)
    params.validate(channels=acc.shape[-1])
    x = wrap_int32(acc + params.bias)
    y = multiply_by_quantized_multiplier(x, params.multiplier, params.shift)
    y = wrap_int32(y + params.zero_point)
    low = max(INT8_MIN, params.zero_point) if params.relu else INT8_MIN
    return np.clip(y, low, INT8_MAX).astype(np.int8)


def quantize_multiplier(real_multiplier):
    """TFLite's QuantizeMultiplier: a positive real scale -> (int32 multiplier, shift)."""
    real = np.asarray(real_multiplier, dtype=np.float64)
    if (real < 0).any():
        raise ValueError("real multipliers must be non-negative")
    mant, exp = np.frexp(real)
    q = np.round(mant * (1 << 31)).astype(np.int64)
    exp = exp.astype(np.int64)
    carry = q == (1 << 31)
    q = np.where(carry, q // 2, q)
    exp = np.where(carry, exp + 1, exp)
    tiny = exp < -31
    q = np.where(tiny, 0, q)
    exp = np.where(tiny, 0, exp)
    return q.astype(np.int32), exp.astype(np.int32)


def array_cycles(m, k, n, rows, cols):
    """Cycle model of a host-tiled GEMM on the systolic array with no stalls.

    Each of the ceil(K/R) * ceil(N/C) weight tiles streams M activation rows; a tile occupies
    the array for max(M, R) cycles (R weight rows must be loaded into the shadow buffer, which
    overlaps the previous tile's activations). The first tile's weights cannot overlap
    anything, and the last result leaves ``R + C + 1`` cycles after its activation entered.
    """
    tiles = -(-k // rows) * -(-n // cols)
    return rows + tiles * max(m, rows) - (rows - m if m < rows else 0) + rows + cols + 1
