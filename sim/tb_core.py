"""cocotb tests of the compute core (systolic array + requantizer) in Verilator.

Reference: the NumPy golden model (``octet.sim.golden.matmul_int32`` and ``requantize``),
which is checked against int64 NumPy and a scalar transcription of TFLite in
``tests/test_golden.py``. Run by ``tests/test_core_rtl.py`` through ``cocotb_tools.runner``;
``OCTET_SEED`` varies the random data.
"""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from octet.numerics import RequantParams
from octet.sim.core_driver import CoreDriver
from octet.sim.golden import (
    array_cycles,
    matmul_int32,
    quantize_multiplier,
    requant_cycles,
    requantize,
)


def _rng(salt):
    return np.random.default_rng(int(os.environ.get("OCTET_SEED", "1")) * 1000 + salt)


async def _start(dut, rng=None, stall=0.0):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    driver = CoreDriver(dut, rng=rng, stall=stall)
    await driver.reset()
    return driver


def _random_shape(rng, driver):
    r, c = driver.rows, driver.cols
    return (int(rng.integers(1, 2 * r + 3)), int(rng.integers(1, 3 * r + 2)),
            int(rng.integers(1, 3 * c + 2)))


def _random_params(rng, n):
    scale = rng.uniform(1e-5, 0.5, n)
    mult, shift = quantize_multiplier(scale)
    return RequantParams.create(mult, shift, rng.integers(-5000, 5000, n),
                                int(rng.integers(-128, 128)), bool(rng.integers(0, 2)))


@cocotb.test()
async def gemm_random_shapes(dut):
    """Random (M, K, N), including ones that are not multiples of the array, no stalls."""
    rng = _rng(1)
    driver = await _start(dut, rng)
    for _ in range(6):
        m, k, n = _random_shape(rng, driver)
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        out, cycles = await driver.gemm(a, b)
        np.testing.assert_array_equal(out, matmul_int32(a, b), err_msg=f"shape {(m, k, n)}")
        expect = array_cycles(m, k, n, driver.rows, driver.cols)
        assert cycles == expect, f"{(m, k, n)}: {cycles} cycles, cycle model says {expect}"


@cocotb.test()
async def gemm_extreme_values(dut):
    """All -128 x -128 (largest products), all 127, mixed signs: exact int32 sums."""
    rng = _rng(2)
    driver = await _start(dut, rng)
    r, c = driver.rows, driver.cols
    m, k, n = r + 3, 2 * r + 1, c + 1
    for va, vb in ((-128, -128), (127, 127), (-128, 127), (127, -128)):
        a = np.full((m, k), va, dtype=np.int8)
        b = np.full((k, n), vb, dtype=np.int8)
        out, _ = await driver.gemm(a, b)
        np.testing.assert_array_equal(out, matmul_int32(a, b), err_msg=f"{va} x {vb}")
        assert out[0, 0] == va * vb * k


@cocotb.test()
async def gemm_random_stalls(dut):
    """Random valid/ready stalls on every stream; results must not change."""
    rng = _rng(3)
    driver = await _start(dut, rng, stall=0.3)
    for _ in range(4):
        m, k, n = _random_shape(rng, driver)
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        out, _ = await driver.gemm(a, b)
        np.testing.assert_array_equal(out, matmul_int32(a, b), err_msg=f"shape {(m, k, n)}")


@cocotb.test()
async def reset_mid_tile(dut):
    """Reset while a tile is half computed; the next GEMM must be exact."""
    rng = _rng(4)
    driver = await _start(dut, rng)
    r, c = driver.rows, driver.cols
    a = rng.integers(-128, 128, (4 * r, 2 * r), dtype=np.int8)
    b = rng.integers(-128, 128, (2 * r, 2 * c), dtype=np.int8)
    pending = cocotb.start_soon(driver.gemm(a, b))
    await ClockCycles(dut.clk, r + 2 * r + 1)  # inside the first tile's activations
    pending.cancel()
    await driver.reset()
    for _ in range(2):
        out, _ = await driver.gemm(a, b)
        np.testing.assert_array_equal(out, matmul_int32(a, b))
    # A requantization pass cut short by reset must leave no stale parameters behind.
    params = _random_params(rng, c)
    acc = rng.integers(-2**20, 2**20, (3 * r, c)).astype(np.int32)
    pending = cocotb.start_soon(driver.requantize(acc, params))
    await ClockCycles(dut.clk, max(2, c // 2))
    pending.cancel()
    await driver.reset()
    out, _ = await driver.requantize(acc, params)
    np.testing.assert_array_equal(out, requantize(acc, params))


@cocotb.test()
async def requant_random(dut):
    """Realistic scales and biases, random zero points and ReLU; stalls on every other pass."""
    rng = _rng(5)
    driver = await _start(dut, rng)
    for i in range(6):
        stall = 0.3 if i % 2 else 0.0
        driver.set_stall(stall)
        m, n = int(rng.integers(1, 20)), int(rng.integers(1, 3 * driver.cols + 2))
        params = _random_params(rng, n)
        acc = rng.integers(-2**22, 2**22, (m, n)).astype(np.int32)
        out, cycles = await driver.requantize(acc, params)
        np.testing.assert_array_equal(out, requantize(acc, params))
        if not stall:
            expect = requant_cycles(m, n, driver.cols)
            assert cycles == expect, f"{(m, n)}: {cycles} cycles, cycle model says {expect}"


@cocotb.test()
async def requant_extremes(dut):
    """INT32 extremes, the saturating INT32_MIN x INT32_MIN case, every shift, saturation."""
    rng = _rng(6)
    driver = await _start(dut, rng)
    n = driver.cols
    for shift_value in (-31, -17, -1, 0, 1, 15, 30):
        mult = np.full(n, -2**31, dtype=np.int64)
        mult[1::2] = 2**31 - 1
        mult[2::3] = 1 << 30
        params = RequantParams.create(mult, np.full(n, shift_value),
                                      rng.integers(-2**31, 2**31, n), -128 if shift_value
                                      else 127, relu=shift_value % 2 == 1)
        acc = np.array([[-2**31] * n, [2**31 - 1] * n, [0] * n, [-1] * n, [1] * n],
                       dtype=np.int32)
        out, _ = await driver.requantize(acc, params)
        np.testing.assert_array_equal(out, requantize(acc, params),
                                      err_msg=f"shift {shift_value}")
    # bias 0 and INT32_MIN accumulators with left shift 0 reach the SRDHM overflow case.
    params = RequantParams.create(np.full(n, -2**31), np.zeros(n, dtype=np.int64))
    acc = np.full((2, n), -2**31, dtype=np.int32)
    out, _ = await driver.requantize(acc, params)
    np.testing.assert_array_equal(out, requantize(acc, params))
    assert (out == 127).all()
