"""Tests of the host compiler (``octet.host.compiler``, ``schedule``, ``memory_plan``).

GEMMs of random shapes (M = 1 and sizes that are not multiples of the array included) and
NHWC convolutions of random geometry run on :class:`GoldenDevice` and must equal an int64
NumPy reference (``golden.matmul_int32``, a loop-over-kernel convolution written here, and
``golden.requantize``) bit for bit, with the chosen blocking, with forced blockings that
exercise every path of the scheduler (k-blocking, single buffering, both loop orders) and on
a tiny configuration. The 256^3 program is checked to double-buffer and to keep the array
busy; every program's tokens pair up; the device's memory outside the output is untouched.
"""

import numpy as np
import pytest

from octet.config import AcceleratorConfig
from octet.host.compiler import CompileError, compile_conv2d, compile_gemm, run_conv2d, run_gemm
from octet.host.device import DeviceTimeout, GoldenDevice
from octet.host.memory_plan import MemoryPlan, MemoryPlanError
from octet.host.schedule import Blocking, ScheduleError
from octet.host.tiling import OperandError
from octet.isa import Opcode
from octet.numerics import NumericsError, RequantParams
from octet.sim import golden

DEFAULT = AcceleratorConfig()
TINY = AcceleratorConfig(rows=4, cols=4, input_rows=16, weight_rows=16, acc_rows=16,
                         mem_bytes=1 << 18)
ODD = AcceleratorConfig(rows=4, cols=8, input_rows=64, weight_rows=128, acc_rows=32,
                        bus_bytes=4, mem_bytes=1 << 18)


def rand_int8(rng, shape):
    return rng.integers(-128, 128, shape, dtype=np.int8)


def rand_requant(rng, n):
    return RequantParams.create(multiplier=rng.integers(2**30, 2**31, n),
                                shift=rng.integers(-12, 2, n),
                                bias=rng.integers(-5000, 5000, n),
                                zero_point=int(rng.integers(-20, 20)),
                                relu=bool(rng.integers(0, 2)))


def conv_reference(x, w, stride, padding):
    n, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    xp = np.zeros((n, h + 2 * padding, wd + 2 * padding, cin), np.int64)
    xp[:, padding:padding + h, padding:padding + wd] = x
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, oh, ow, cout), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, ky:ky + stride * (oh - 1) + 1:stride,
                       kx:kx + stride * (ow - 1) + 1:stride]
            out += np.einsum("nhwc,co->nhwo", patch, w[ky, kx].astype(np.int64))
    return golden.wrap_int32(out).astype(np.int32)


def token_balance(program):
    """Pushes minus pops of each token queue over a whole program."""
    queues = {("LOAD", "push_next"): "l2c", ("IM2COL", "push_next"): "l2c",
              ("GEMM", "pop_prev"): "l2c", ("GEMM", "push_prev"): "c2l",
              ("LOAD", "pop_next"): "c2l", ("IM2COL", "pop_next"): "c2l",
              ("GEMM", "push_next"): "c2s", ("STORE", "pop_prev"): "c2s",
              ("STORE", "push_prev"): "s2c", ("GEMM", "pop_next"): "s2c"}
    balance = dict.fromkeys(queues.values(), 0)
    for op, fields in program.instructions:
        for flag in ("pop_prev", "pop_next", "push_prev", "push_next"):
            if fields.get(flag):
                balance[queues[op.name, flag]] += 1 if flag.startswith("push") else -1
    return balance


def check_run(stats, config):
    assert token_balance(stats.program) == dict.fromkeys(("l2c", "c2l", "c2s", "s2c"), 0)
    assert stats.program.estimate(config) == stats.counters


# --- GEMM ------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [DEFAULT, ODD, TINY], ids=["default", "4x8", "tiny"])
def test_gemm_random_shapes(config, seed):
    rng = np.random.default_rng(seed)
    device = GoldenDevice(config)
    shapes = [(1, 1, 1), (1, 37, 5), (3, 8, 8), (17, 33, 9), (2, 5, 70)]
    top = 40 if config is TINY else 80
    shapes += [tuple(int(v) for v in rng.integers(1, top, 3)) for _ in range(4)]
    for m, k, n in shapes:
        a, b = rand_int8(rng, (m, k)), rand_int8(rng, (k, n))
        out, stats = run_gemm(device, a, b)
        assert out.dtype == np.int32 and out.shape == (m, n)
        np.testing.assert_array_equal(out, golden.matmul_int32(a, b), err_msg=str((m, k, n)))
        check_run(stats, config)


@pytest.mark.parametrize("blocking", [
    Blocking(mb=5, kb=1, nb=1),
    Blocking(mb=3, kb=2, nb=2, order="inputs"),
    Blocking(mb=3, kb=3, nb=1, a_full_k=True),   # single-buffered activations
    Blocking(mb=1, kb=2, nb=1, a_full_k=True, order="inputs"),
    Blocking(mb=16, kb=1, nb=1),                  # single-buffered output
    Blocking(mb=2, kb=4, nb=1),                   # single-buffered weights
])
def test_gemm_forced_blockings(blocking, seed):
    rng = np.random.default_rng(seed)
    device = GoldenDevice(TINY)
    m, k, n = 23, 19, 10
    a, b = rand_int8(rng, (m, k)), rand_int8(rng, (k, n))
    out, stats = run_gemm(device, a, b, blocking=blocking)
    np.testing.assert_array_equal(out, golden.matmul_int32(a, b))
    assert stats.program.blocking == blocking
    check_run(stats, TINY)


def test_gemm_requant(seed):
    rng = np.random.default_rng(seed)
    device = GoldenDevice(ODD)
    for m, k, n in [(1, 9, 3), (30, 41, 19), (64, 16, 8)]:
        a, b = rand_int8(rng, (m, k)), rand_int8(rng, (k, n))
        params = rand_requant(rng, n)
        out, stats = run_gemm(device, a, b, params)
        assert out.dtype == np.int8
        np.testing.assert_array_equal(out, golden.requantize(golden.matmul_int32(a, b), params))
        check_run(stats, ODD)


def test_gemm_extremes():
    device = GoldenDevice(ODD)
    for value in (-128, 127):
        a = np.full((9, 300), value, np.int8)
        b = np.full((300, 11), -128, np.int8)
        out, _ = run_gemm(device, a, b)
        np.testing.assert_array_equal(out, golden.matmul_int32(a, b))


def test_gemm_256_double_buffers_and_keeps_the_array_busy(seed):
    rng = np.random.default_rng(seed)
    a, b = rand_int8(rng, (256, 256)), rand_int8(rng, (256, 256))
    out, stats = run_gemm(GoldenDevice(DEFAULT), a, b)
    np.testing.assert_array_equal(out, golden.matmul_int32(a, b))
    program = stats.program
    assert len(program.to_bytes()) < 64 * 1024
    gemms = program.fields_of(Opcode.GEMM)
    # Both halves of each memory are in use ...
    assert {g["a_addr"] >= DEFAULT.input_rows // 2 for g in gemms} == {False, True}
    assert {g["acc_addr"] >= DEFAULT.acc_rows // 2 for g in gemms} == {False, True}
    loads = program.fields_of(Opcode.LOAD)
    assert {ld["spad_addr"] >= DEFAULT.weight_rows // 2 for ld in loads if ld["target"]} \
        == {False, True}
    # ... loads wait for the compute unit to free a slot, not for the previous load's GEMM ...
    assert any(ld.get("pop_next") for ld in loads)
    assert any(g.get("pop_next") for g in gemms)
    # ... every GEMM runs whole k and n loops over a large m ...
    assert min(g["m"] for g in gemms) >= 32 and all(g["k_tiles"] * g["n_tiles"] >= 32
                                                    for g in gemms)
    # ... and the array is busy almost all the time.
    assert stats.counters["compute_cycles"] == 256 * 32 * 32
    assert stats.counters["bytes_written"] == 256 * 256 * 4
    assert stats.utilization > 0.9
    check_run(stats, DEFAULT)


def test_gemm_touches_only_its_output():
    rng = np.random.default_rng(0)
    device = GoldenDevice(ODD)
    device.simulator.memory[:] = 0xA5
    a, b = rand_int8(rng, (13, 21)), rand_int8(rng, (21, 11))
    _, stats = run_gemm(device, a, b, rand_requant(rng, 11))
    mask = np.ones(ODD.mem_bytes, bool)
    for addr, nbytes in stats.regions.values():
        mask[addr:addr + nbytes] = False
    assert (device.simulator.memory[mask] == 0xA5).all()


# --- conv2d ----------------------------------------------------------------------------------

CONV_CASES = [  # (N, H, W, Cin, KH, KW, Cout, stride, padding)
    (1, 5, 5, 3, 3, 3, 4, 1, 1),
    (2, 7, 6, 5, 3, 2, 9, 2, 1),
    (1, 8, 8, 8, 1, 1, 8, 1, 0),
    (1, 9, 4, 1, 4, 3, 3, 3, 2),
    (3, 4, 5, 11, 2, 2, 2, 1, 0),
    (1, 3, 3, 2, 3, 3, 17, 1, 3),     # padding larger than the kernel reach
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("config", [DEFAULT, ODD], ids=["default", "4x8"])
def test_conv2d(case, config, seed):
    n, h, w, cin, kh, kw, cout, stride, padding = case
    rng = np.random.default_rng(seed)
    x, wt = rand_int8(rng, (n, h, w, cin)), rand_int8(rng, (kh, kw, cin, cout))
    out, stats = run_conv2d(GoldenDevice(config), x, wt, stride, padding)
    np.testing.assert_array_equal(out, conv_reference(x, wt, stride, padding))
    assert stats.fallback is None
    assert stats.program.fields_of(Opcode.IM2COL)
    check_run(stats, config)


def test_conv2d_unbatched_requant_and_tiny(seed):
    rng = np.random.default_rng(seed)
    x, wt = rand_int8(rng, (6, 7, 3)), rand_int8(rng, (3, 3, 3, 6))
    params = rand_requant(rng, 6)
    out, stats = run_conv2d(GoldenDevice(TINY), x, wt, stride=1, padding=1, requant=params)
    assert out.shape == (6, 7, 6) and out.dtype == np.int8
    expect = golden.requantize(conv_reference(x[None], wt, 1, 1)[0], params)
    np.testing.assert_array_equal(out, expect)
    assert stats.fallback is None
    check_run(stats, TINY)


@pytest.mark.parametrize("x_shape, w_shape, config, reason", [
    ((1, 17, 3, 2), (16, 1, 2, 3), DEFAULT, "IM2COL kernel_h 16 exceeds 15"),
    ((1, 4, 4, 9), (3, 3, 9, 2), TINY, "one pixel's patch needs 27 input-scratchpad rows but "
                                       "there are 16"),
])
def test_conv2d_fallback(x_shape, w_shape, config, reason, seed):
    rng = np.random.default_rng(seed)
    x, wt = rand_int8(rng, x_shape), rand_int8(rng, w_shape)
    out, stats = run_conv2d(GoldenDevice(config), x, wt, 1, 0)
    np.testing.assert_array_equal(out, conv_reference(x, wt, 1, 0))
    assert stats.fallback == reason
    with pytest.raises(CompileError, match=reason.split(" ")[0]):
        compile_conv2d(config, x_shape, w_shape, x_addr=0, w_addr=0, y_addr=0)


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, message", [
    (np.zeros((2, 3)), np.zeros((3, 2), np.int8), "A must have dtype int8, not float64"),
    (np.zeros((2, 3), np.int8), np.zeros((4, 2), np.int8), "inner dimensions differ"),
    (np.zeros((2, 0), np.int8), np.zeros((0, 2), np.int8), "A must not be empty"),
])
def test_gemm_operand_errors(a, b, message):
    with pytest.raises(OperandError, match=message):
        run_gemm(GoldenDevice(TINY), a, b)


def test_gemm_requant_channel_mismatch():
    a, b = np.zeros((2, 3), np.int8), np.zeros((3, 4), np.int8)
    params = RequantParams.create(multiplier=[1 << 30] * 3, shift=[0] * 3)
    with pytest.raises(NumericsError, match="requant parameters have 3 channels but the "
                                            "output has 4"):
        run_gemm(GoldenDevice(TINY), a, b, params)


@pytest.mark.parametrize("x, w, stride, padding, error, message", [
    (np.zeros((4, 4, 3), np.int8), np.zeros((1, 1, 4, 2), np.int8), 1, 0, OperandError,
     "x has 3 channels but w expects 4"),
    (np.zeros((2, 2, 1), np.int8), np.zeros((3, 3, 1, 1), np.int8), 1, 0, OperandError,
     "a 3x3 kernel with padding 0 does not fit the 2x2 image"),
    (np.zeros((4, 4), np.int8), np.zeros((1, 1, 4, 2), np.int8), 1, 0, OperandError,
     "x must be an int8 NumPy array with 3 or 4 dimensions"),
    (np.zeros((4, 4, 1), np.int8), np.zeros((1, 1, 1, 1), np.int8), 0, 0, ValueError,
     "stride must be at least 1, not 0"),
    (np.zeros((4, 4, 1), np.int8), np.zeros((1, 1, 1, 1), np.int8), 1, -1, ValueError,
     "padding must be at least 0, not -1"),
])
def test_conv2d_operand_errors(x, w, stride, padding, error, message):
    with pytest.raises(error, match=message):
        run_conv2d(GoldenDevice(TINY), x, w, stride, padding)


def test_compile_errors():
    with pytest.raises(ScheduleError, match="a weight block needs 32 rows but the memory has "
                                            "16"):
        compile_gemm(TINY, 8, 16, 8, a_addr=0, b_addr=0, c_addr=0,
                     blocking=Blocking(mb=1, kb=4, nb=2))
    with pytest.raises(ScheduleError, match="blocking mb must be a positive integer, not 0"):
        compile_gemm(TINY, 8, 8, 8, a_addr=0, b_addr=0, c_addr=0, blocking=Blocking(0, 1, 1))
    with pytest.raises(ValueError, match="requant needs param_addr"):
        compile_gemm(TINY, 2, 2, 1, a_addr=0, b_addr=0, c_addr=0,
                     requant=RequantParams.create(multiplier=[1], shift=[0]))
    with pytest.raises(ValueError, match="m must be at least 1, not 0"):
        compile_gemm(TINY, 0, 2, 1, a_addr=0, b_addr=0, c_addr=0)


def test_device_memory_exhausted_and_timeout():
    small = AcceleratorConfig(rows=4, cols=4, input_rows=16, weight_rows=16, acc_rows=16,
                              mem_bytes=4096)
    a, b = np.zeros((40, 40), np.int8), np.zeros((40, 40), np.int8)
    with pytest.raises(MemoryPlanError, match="device memory exhausted: 'C' needs 6400 bytes"):
        run_gemm(GoldenDevice(small), a, b)
    with pytest.raises(DeviceTimeout, match="still running after 50 cycles"):
        run_gemm(GoldenDevice(TINY), a, b, timeout_cycles=50)


def test_memory_plan():
    plan = MemoryPlan(1000, base=4, align=32)
    assert plan.alloc(10, "a") == 32
    assert plan.alloc(1, "b", align=8) == 48
    assert plan.alloc(0, "c") == 64
    assert plan.regions == {"a": (32, 10), "b": (48, 1), "c": (64, 0)}
    with pytest.raises(MemoryPlanError, match="region 'a' is already allocated"):
        plan.alloc(1, "a")
    with pytest.raises(MemoryPlanError, match="'d' needs 1000 bytes at 0x40 but memory ends "
                                              "at 0x3e8"):
        plan.alloc(1000, "d")
    with pytest.raises(MemoryPlanError, match="alignment must be a power of two, not 3"):
        plan.alloc(1, "e", align=3)
    with pytest.raises(MemoryPlanError, match="memory size must be a positive integer"):
        MemoryPlan(0)
