"""Tests of the NumPy golden model (``octet.sim.golden``) against independent references.

``matmul_int32`` is checked against an int64 NumPy matmul (wrapped by hand where K is large
enough to overflow int32). The requantization functions are checked bit for bit against
``tflite_*`` below: a scalar transcription of TFLite's C++ reference (gemmlowp's
SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, MultiplyByQuantizedMultiplier and
the per-channel output stage of ``reference_integer_ops``) in plain Python ints with explicit
int32 wrapping, sharing no code with the model. The cycle models are checked for the
properties their docstrings state.
"""

import math

import numpy as np
import pytest

from octet.numerics import INT32_MAX, INT32_MIN, REQUANT_STAGES, SHIFT_MAX, SHIFT_MIN, RequantParams
from octet.sim import golden

EXTREMES = [INT32_MIN, INT32_MIN + 1, -(2**30), -1, 0, 1, 2**30, INT32_MAX - 1, INT32_MAX]


# --- Scalar transcription of TFLite's reference, C++ int32 semantics ------------------------

def i32(x):
    """static_cast<int32_t>: keep the low 32 bits, two's complement."""
    x &= 0xFFFF_FFFF
    return x - (1 << 32) if x & 0x8000_0000 else x


def cpp_div(a, b):
    """C++ integer division: the quotient truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def tflite_srdhm(a, b):
    overflow = a == b and a == INT32_MIN
    ab_64 = a * b
    nudge = (1 << 30) if ab_64 >= 0 else 1 - (1 << 30)
    ab_x2_high32 = i32(cpp_div(ab_64 + nudge, 1 << 31))
    return INT32_MAX if overflow else ab_x2_high32


def tflite_rdbp(x, exponent):
    assert 0 <= exponent <= 31
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def tflite_mbqm(x, quantized_multiplier, shift):
    left_shift = shift if shift > 0 else 0
    right_shift = 0 if shift > 0 else -shift
    return tflite_rdbp(tflite_srdhm(i32(x * (1 << left_shift)), quantized_multiplier),
                       right_shift)


def tflite_output_stage(acc, bias, multiplier, shift, output_offset, relu):
    act_min = max(-128, output_offset) if relu else -128
    act_max = 127
    acc = i32(acc + bias)
    acc = tflite_mbqm(acc, multiplier, shift)
    acc = i32(acc + output_offset)
    acc = max(acc, act_min)
    return min(acc, act_max)


# --- matmul_int32 -----------------------------------------------------------------------------

def test_matmul_random_shapes(seed):
    """Random (M, K, N) from 1 to 40 against an int64 NumPy matmul."""
    rng = np.random.default_rng(seed)
    for _ in range(30):
        m, k, n = (int(v) for v in rng.integers(1, 41, 3))
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        out = golden.matmul_int32(a, b)
        assert out.dtype == np.int32 and out.shape == (m, n)
        np.testing.assert_array_equal(out, a.astype(np.int64) @ b.astype(np.int64))


def test_matmul_extremes():
    """Constant extreme operands give exactly va * vb * K; alternating -128 / 127 patterns
    match int64 NumPy."""
    k = 1000
    for va, vb in [(-128, -128), (127, 127), (-128, 127), (127, -128)]:
        a, b = np.full((3, k), va, np.int8), np.full((k, 5), vb, np.int8)
        np.testing.assert_array_equal(golden.matmul_int32(a, b), np.full((3, 5), va * vb * k))
    a = np.where(np.indices((4, k)).sum(0) % 2, -128, 127).astype(np.int8)
    b = np.where(np.indices((k, 6)).sum(0) % 3, 127, -128).astype(np.int8)
    np.testing.assert_array_equal(golden.matmul_int32(a, b),
                                  a.astype(np.int64) @ b.astype(np.int64))


def test_matmul_wraps_mod_2_32():
    """K = 2**17 + 5 products of 16384 overflow int32; the result wraps like the array."""
    k = 2**17 + 5
    a = np.full((1, k), -128, dtype=np.int8)
    b = np.full((k, 2), -128, dtype=np.int8)
    b[:, 1] = 127
    exact = [16384 * k, -16256 * k]
    assert exact[0] > INT32_MAX  # the case does wrap
    wrapped = [((v + 2**31) % 2**32) - 2**31 for v in exact]
    np.testing.assert_array_equal(golden.matmul_int32(a, b), [wrapped])
    assert golden.matmul_int32(a, b)[0, 0] == 16384 * k - 2**32


# --- requantization, bit-exact with the TFLite transcription -----------------------------------

def _vectorized_vs_scalar(xs, mults, shifts):
    got = golden.multiply_by_quantized_multiplier(xs, mults, shifts)
    want = [tflite_mbqm(int(x), int(m), int(s)) for x, m, s in zip(xs, mults, shifts, strict=True)]
    np.testing.assert_array_equal(got, want)


def test_srdhm_and_rdbp_extremes():
    """Every pair of extreme int32 values, including INT32_MIN * INT32_MIN saturation."""
    a, b = np.meshgrid(EXTREMES, EXTREMES)
    a, b = a.ravel(), b.ravel()
    got = golden.saturating_rounding_doubling_high_mul(a, b)
    want = [tflite_srdhm(int(x), int(y)) for x, y in zip(a, b, strict=True)]
    np.testing.assert_array_equal(got, want)
    assert golden.saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX
    x, e = np.meshgrid(EXTREMES + [-5, -3, -2, 2, 3, 5], np.arange(32))
    x, e = x.ravel(), e.ravel()
    np.testing.assert_array_equal(golden.rounding_divide_by_pot(x, e),
                                  [tflite_rdbp(int(v), int(s)) for v, s in zip(x, e, strict=True)])


def test_srdhm_hardware_form(seed):
    """The RTL's floor form ``(a*b + 2**30) >> 31`` equals gemmlowp's nudge-and-truncate for
    every pair but INT32_MIN * INT32_MIN (docs/numerics.md, "Hardware form")."""
    rng = np.random.default_rng(seed)
    a = np.concatenate([rng.integers(INT32_MIN, INT32_MAX, 20000, endpoint=True), EXTREMES])
    b = np.concatenate([rng.integers(INT32_MIN, INT32_MAX, 20000, endpoint=True), EXTREMES[1:],
                        [INT32_MAX]])
    floor_form = golden.wrap_int32((a * b + (1 << 30)) >> 31)
    np.testing.assert_array_equal(golden.saturating_rounding_doubling_high_mul(a, b), floor_form)


def test_mbqm_random_full_range(seed):
    """Random int32 x and multipliers over the full range, every shift in [-31, 30]."""
    rng = np.random.default_rng(seed)
    shifts = np.repeat(np.arange(SHIFT_MIN, SHIFT_MAX + 1), 80)
    xs = rng.integers(INT32_MIN, INT32_MAX, len(shifts), endpoint=True)
    mults = rng.integers(INT32_MIN, INT32_MAX, len(shifts), endpoint=True)
    _vectorized_vs_scalar(xs, mults, shifts)
    # Small magnitudes reach the rounding ties that large random values rarely hit.
    _vectorized_vs_scalar(rng.integers(-300, 300, len(shifts)), mults, shifts)


def test_mbqm_extremes_every_shift():
    """INT32 extremes of x and multiplier, for every legal shift."""
    x, m, s = np.meshgrid(EXTREMES, EXTREMES, np.arange(SHIFT_MIN, SHIFT_MAX + 1))
    _vectorized_vs_scalar(x.ravel(), m.ravel(), s.ravel())


def _check_requantize(acc, params):
    want = np.empty(acc.shape, dtype=np.int64)
    for idx in np.ndindex(*acc.shape):
        mult, shift, bias = params.channel(idx[-1])
        want[idx] = tflite_output_stage(int(acc[idx]), bias, mult, shift, params.zero_point,
                                        params.relu)
    got = golden.requantize(acc, params)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("relu", [False, True])
def test_requantize_realistic(seed, relu):
    """Multipliers from quantize_multiplier(scale) over many decades, random biases and zps."""
    rng = np.random.default_rng(seed + relu)
    for _ in range(20):
        n = int(rng.integers(1, 17))
        mult, shift = golden.quantize_multiplier(10.0 ** rng.uniform(-9, 1, n))
        params = RequantParams.create(mult, shift, rng.integers(-2**20, 2**20, n),
                                      int(rng.integers(-128, 128)), relu)
        _check_requantize(rng.integers(-2**24, 2**24, (10, n)), params)


def test_requantize_full_random_and_extremes(seed):
    """Full-range random multipliers, shifts, biases; INT32 extremes of acc, bias, multiplier."""
    rng = np.random.default_rng(seed)
    n = len(EXTREMES)
    for zp, relu in [(-128, False), (127, True), (-128, True), (5, True), (-7, False)]:
        params = RequantParams.create(
            rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True),
            rng.integers(SHIFT_MIN, SHIFT_MAX, n, endpoint=True),
            rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True), zp, relu)
        _check_requantize(rng.integers(INT32_MIN, INT32_MAX, (20, n), endpoint=True), params)
        params = RequantParams.create(EXTREMES, rng.permutation(np.arange(-31, 31))[:n],
                                      EXTREMES[::-1], zp, relu)
        acc = np.array([[v] * n for v in EXTREMES])
        _check_requantize(acc, params)
    # x = INT32_MIN, multiplier = INT32_MIN, shift 0: the saturating case, then + zp wraps.
    params = RequantParams.create([INT32_MIN] * 2, [0, 0], [0, 0], zero_point=1)
    _check_requantize(np.array([[INT32_MIN, INT32_MIN]]), params)
    assert (golden.requantize(np.array([[INT32_MIN, 0]]), params) == [-128, 1]).all()


# --- quantize_multiplier -----------------------------------------------------------------------

def test_quantize_multiplier_reconstructs(seed):
    """multiplier * 2**(shift - 31) reconstructs the scale to ~1e-9 relative error."""
    real = 10.0 ** np.random.default_rng(seed).uniform(-9, 2, 2000)
    mult, shift = golden.quantize_multiplier(real)
    assert mult.dtype == np.int32 and shift.dtype == np.int32
    assert ((mult >= 2**30) & (mult <= INT32_MAX)).all()
    back = mult.astype(np.float64) * np.exp2(shift.astype(np.float64) - 31)
    assert np.max(np.abs(back / real - 1)) < 1e-9


def test_quantize_multiplier_carry():
    """A mantissa that rounds up to 2**31 carries into the exponent: (2**30, shift + 1)."""
    real = math.ldexp(1 - 2.0**-40, -3)  # frexp mantissa 1 - 2**-40 rounds to 2**31
    mult, shift = golden.quantize_multiplier(real)
    assert (int(mult), int(shift)) == (2**30, -2)
    assert golden.quantize_multiplier(1.0) == (2**30, 1)
    assert golden.quantize_multiplier(0.5) == (2**30, 0)


def test_quantize_multiplier_tiny_and_zero():
    """Shifts below -31 flush to (0, 0), as in TFLite; zero maps to (0, 0)."""
    assert golden.quantize_multiplier(0.0) == (0, 0)
    assert golden.quantize_multiplier(2.0**-40) == (0, 0)
    assert golden.quantize_multiplier(2.0**-32) == (2**30, -31)
    with pytest.raises(ValueError, match="non-negative"):
        golden.quantize_multiplier([0.5, -0.1])


def test_quantize_multiplier_rounds_ties_away_from_zero():
    """TFLite's QuantizeMultiplier uses std::round: 0.5 + 2**-32 has mantissa*2**31 = 2**30 + .5"""
    assert golden.quantize_multiplier(0.5 + 2.0**-32) == (2**30 + 1, 0)


# --- cycle models --------------------------------------------------------------------------

SIZES = [(1, 1), (2, 3), (3, 2), (4, 4), (8, 8), (3, 7)]


@pytest.mark.parametrize("rows,cols", SIZES)
def test_array_cycles_properties(rows, cols):
    """Strictly monotonic in M; M cycles per tile once M >= R + C; R per tile for M = 1
    (when C <= R; otherwise a bank still draining costs C every other tile)."""
    k, n, tiles = 3 * rows, 2 * cols, 6
    latency = rows + cols + 1
    costs = [golden.array_cycles(m, k, n, rows, cols) for m in range(1, 4 * (rows + cols))]
    assert all(b > a for a, b in zip(costs, costs[1:], strict=False))
    for m in range(rows + cols, 4 * (rows + cols)):
        # First tile's weights, then the activations of all tiles back to back, then latency.
        assert golden.array_cycles(m, k, n, rows, cols, overhead=0) \
            == rows + tiles * m - 1 + latency
        extra = golden.array_cycles(m, k + rows, n, rows, cols) \
            - golden.array_cycles(m, k, n, rows, cols)
        assert extra == 2 * m  # two more tiles
    # M = 1 is weight-bound: R cycles a tile, unless a tile's bank is still draining (C > R).
    extra = golden.array_cycles(1, k + rows, n, rows, cols) \
        - golden.array_cycles(1, k, n, rows, cols)
    assert extra == max(2 * rows, rows + cols)
    assert golden.array_cycles(1, rows, cols, rows, cols) \
        == rows + latency + golden.ARRAY_DRIVER_OVERHEAD


def test_requant_cycles_properties():
    """Linear in passes; each pass costs lanes + M + stages + 4; monotonic in M and N."""
    for lanes in (1, 4, 8):
        for m in (1, 5, 40):
            one = golden.requant_cycles(m, lanes, lanes)
            assert one == lanes + m + REQUANT_STAGES + 4
            assert golden.requant_cycles(m, 3 * lanes, lanes) == 3 * one
            assert golden.requant_cycles(m, lanes + 1, lanes) == 2 * one
            assert golden.requant_cycles(m + 1, lanes, lanes) == one + 1
