"""NumPy golden model of Octet's arithmetic, bit-exact with the RTL.

All functions compute in int64 and wrap to int32 exactly where the hardware (and TFLite's C++
reference) works in int32, so the results match the RTL and TFLite bit for bit. The semantics
are specified in ``docs/numerics.md``; constants come from :mod:`octet.numerics`.
"""

import numpy as np

from octet.numerics import INT8_MAX, INT8_MIN, INT32_MAX, INT32_MIN, REQUANT_STAGES, RequantParams

#: Cycles the stream driver and the output FIFO add to a GEMM: one to offer the first beat,
#: two through the result FIFO (write, registered read), one for the sink to take the beat.
ARRAY_DRIVER_OVERHEAD = 4

__all__ = [
    "wrap_int32", "matmul_int32", "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot", "multiply_by_quantized_multiplier", "requantize",
    "quantize_multiplier", "array_cycles", "requant_cycles",
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
    # TFLite rounds with std::round (ties away from zero); the mantissa is never negative.
    q = np.floor(mant * (1 << 31) + 0.5).astype(np.int64)
    exp = exp.astype(np.int64)
    carry = q == (1 << 31)
    q = np.where(carry, q // 2, q)
    exp = np.where(carry, exp + 1, exp)
    tiny = exp < -31
    q = np.where(tiny, 0, q)
    exp = np.where(tiny, 0, exp)
    return q.astype(np.int32), exp.astype(np.int32)


def array_cycles(m, k, n, rows, cols, overhead=ARRAY_DRIVER_OVERHEAD):
    """Cycle model of a host-tiled GEMM on the systolic array when no stream stalls.

    Replays the array's handshake rules tile by tile: a tile's R weight rows load one per
    cycle into the bank the tile before last used, once that tile's last activation is C
    cycles in (the drain rule of :mod:`octet.hdl.systolic_array`); its M activations follow
    when the weights are complete and the previous tile's activations are done; the final
    result leaves ``R + C + 1`` cycles after its activation. ``overhead`` is the fixed cost of
    offering the first beat and taking the last one (the driver's and the output FIFO's).
    """
    tiles = -(-k // rows) * -(-n // cols)
    w_end = -1                   # cycle the previous tile's last weight row was accepted
    last_act = [None, None]      # per bank: cycle its last activation was accepted
    prev_act_end = -1
    for t in range(tiles):
        bank = t % 2
        start = w_end + 1
        if last_act[bank] is not None:
            start = max(start, last_act[bank] + max(cols, 1))
        w_end = start + rows - 1
        a_start = max(w_end + 1, prev_act_end + 1)
        prev_act_end = a_start + m - 1
        last_act[bank] = prev_act_end
    return prev_act_end + rows + cols + 1 + overhead


def requant_cycles(m, n, lanes):
    """Cycle model of requantizing an (M, N) int32 block, ``lanes`` channels per pass.

    Each pass loads ``lanes`` parameter beats, streams M rows and waits for the pipeline
    to drain before the next pass's parameters (the requantizer only takes parameters while
    empty). Four more cycles per pass: the driver starts rows only once the last parameter
    beat is taken (one; the requantizer takes rows from the cycle after too, once that beat is
    in its lane's registers), and the FIFO and handshake cost three as for the array.
    """
    passes = -(-n // lanes)
    return passes * (lanes + m + REQUANT_STAGES + 4)
