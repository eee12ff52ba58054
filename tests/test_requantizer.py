"""Amaranth-simulator tests of the requantizer (``octet.hdl.requantizer``).

Passes of (parameters, int32 rows) are streamed in by two producer testbenches that follow the
host contract (a pass's rows only after its parameters are taken, the next parameters only after
the rows are taken) and read back by a consumer testbench (``octet.sim.amaranth_streams``).
Every output row is compared with the reference, ``octet.sim.golden.requantize`` (itself checked
against a transcription of TFLite in ``tests/test_golden.py``). Covered: realistic and extreme
parameters, ReLU, random stalls on all three streams, parameters reloaded between passes, rows
offered during a parameter load, and the constructor's argument check.
"""

import gc

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Fragment, Module, Signal
from amaranth.sim import Simulator

from octet.hdl.requantizer import Requantizer
from octet.numerics import INT32_MAX, INT32_MIN, REQUANT_STAGES, RequantParams
from octet.sim import golden
from octet.sim.amaranth_streams import stream_get, stream_put

LANES = [1, 3, 4]
EXTREMES = [INT32_MIN, INT32_MIN + 1, -(2**30), -1, 0, 1, 2**30, INT32_MAX]


def make_top(lanes):
    dut = Requantizer(lanes)
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    cycle = Signal(32)
    top.d.sync += cycle.eq(cycle + 1)
    return top, dut, cycle


def random_stall(rng, probability):
    if not probability:
        return None
    return lambda: int(rng.integers(1, 4)) if rng.random() < probability else 0


def run_passes(lanes, passes, rng=None, stall=0.0, drain=False, timeout=20_000):
    """Stream ``passes`` [(RequantParams, acc (M, lanes))] through a Requantizer; return the
    cycle counter at the last accepted output.

    The next pass's parameters are offered as soon as the rows are taken (while results may
    still be queued), or with ``drain`` only after every result was read, as the cocotb driver
    does.
    """
    top, dut, cycle = make_top(lanes)
    state = {"params_taken": 0, "rows_taken": 0, "results_taken": 0, "end": None}

    async def wait_for(ctx, key, count):
        while state[key] < count:
            await ctx.tick()

    async def params(ctx):
        pause = random_stall(rng, stall)
        for i, (p, _) in enumerate(passes):
            await wait_for(ctx, "results_taken" if drain else "rows_taken", i)
            for c in range(lanes):
                mult, shift, bias = p.channel(c)
                beat = {"multiplier": mult, "shift": shift, "bias": bias,
                        "zero_point": p.zero_point, "relu": int(p.relu)}
                await stream_put(ctx, dut.p_stream, beat, pause)
            state["params_taken"] += 1

    async def rows(ctx):
        pause = random_stall(rng, stall)
        for i, (_, acc) in enumerate(passes):
            await wait_for(ctx, "params_taken", i + 1)
            for r, row in enumerate(acc):
                beat = {"data": [int(v) for v in row], "last": int(r == len(acc) - 1)}
                await stream_put(ctx, dut.i_stream, beat, pause)
            state["rows_taken"] += 1

    async def results(ctx):
        pause = random_stall(rng, stall)
        for i, (p, acc) in enumerate(passes):
            got = []
            for r in range(len(acc)):
                beat = await stream_get(ctx, dut.o_stream, pause)
                assert beat.last == (r == len(acc) - 1), f"pass {i} row {r}: last flag"
                got.append(list(beat.data))
            np.testing.assert_array_equal(np.array(got), golden.requantize(acc, p),
                                          err_msg=f"pass {i}: {p}")
            state["results_taken"] += 1
        state["end"] = ctx.get(cycle)

    async def watchdog(ctx):
        for _ in range(timeout):
            await ctx.tick()
        raise AssertionError(f"simulation still running after {timeout} cycles (deadlock?)")

    sim = Simulator(top)
    sim.add_clock(1e-6)
    for tb in (params, rows, results):
        sim.add_testbench(tb)
    sim.add_testbench(watchdog, background=True)
    sim.run()
    return state["end"]


def realistic_params(rng, lanes, relu=None):
    mult, shift = golden.quantize_multiplier(10.0 ** rng.uniform(-6, 0.5, lanes))
    relu = bool(rng.integers(0, 2)) if relu is None else relu
    return RequantParams.create(mult, shift, rng.integers(-5000, 5000, lanes),
                                int(rng.integers(-128, 128)), relu)


@pytest.mark.parametrize("lanes", LANES)
def test_realistic_params_reloaded_between_passes(lanes, seed):
    """Several passes, each with new realistic params (scales 1e-6..3, biases, zp, ReLU).

    Reference: golden.requantize."""
    rng = np.random.default_rng(seed)
    passes = [(realistic_params(rng, lanes),
               rng.integers(-2**22, 2**22, (int(rng.integers(1, 12)), lanes)))
              for _ in range(6)]
    run_passes(lanes, passes)


@pytest.mark.parametrize("relu", [False, True])
def test_relu_clamps_at_zero_point(relu, seed):
    """Accumulators around zero, ReLU on or off, several zero points (golden.requantize)."""
    rng = np.random.default_rng(seed + 1)
    passes = []
    for zp in (-128, -20, 0, 37, 127):
        mult, shift = golden.quantize_multiplier(np.full(4, 1 / 64))
        p = RequantParams.create(mult, shift, [0, 10, -10, 0], zp, relu)
        passes.append((p, rng.integers(-20000, 20000, (6, 4))))
    run_passes(4, passes)
    if relu:
        assert all((golden.requantize(acc, p) >= p.zero_point).all() for p, acc in passes)


@pytest.mark.parametrize("lanes", LANES)
def test_random_stalls(lanes, seed):
    """Random idle cycles on the parameter, input and output streams (golden.requantize)."""
    rng = np.random.default_rng(seed + 2)
    passes = [(realistic_params(rng, lanes),
               rng.integers(-2**24, 2**24, (int(rng.integers(1, 15)), lanes)))
              for _ in range(5)]
    run_passes(lanes, passes, rng, stall=0.4)


def test_extremes_every_shift(seed):
    """INT32 extremes of acc, bias and multiplier (INT32_MIN * INT32_MIN saturates), shifts
    from -31 to 30, zero points at both ends. Reference: golden.requantize."""
    rng = np.random.default_rng(seed + 3)
    lanes = 4
    acc = np.array([[v] * lanes for v in EXTREMES])
    passes = []
    for shift in (-31, -30, -17, -1, 0, 1, 15, 29, 30):
        mult = rng.choice([INT32_MIN, INT32_MAX, 1 << 30, 1, -1, 0], lanes)
        bias = rng.choice(EXTREMES, lanes)
        zp, relu = (127, True) if shift % 2 else (-128, False)
        passes.append((RequantParams.create(mult, [shift] * lanes, bias, zp, relu), acc))
    # Bias 0, INT32_MIN x INT32_MIN: SRDHM saturates to INT32_MAX (without the saturation the
    # product 2**62 would wrap to INT32_MIN); right shifts keep the sign; zp 1 wraps it.
    sat = np.array([[INT32_MIN] * lanes, [INT32_MAX] * lanes])
    for zp in (0, 1):
        p = RequantParams.create([INT32_MIN] * lanes, [0, -1, -31, 0], zero_point=zp)
        passes.append((p, sat))
    assert (golden.requantize(sat, passes[-2][0])[0] == [127, 127, 1, 127]).all()
    passes.append((RequantParams.create(rng.integers(INT32_MIN, INT32_MAX, lanes, endpoint=True),
                                        rng.integers(-31, 31, lanes),
                                        rng.integers(INT32_MIN, INT32_MAX, lanes, endpoint=True),
                                        int(rng.integers(-128, 128)), True),
                   rng.integers(INT32_MIN, INT32_MAX, (30, lanes), endpoint=True)))
    run_passes(lanes, passes)


@pytest.mark.parametrize("lanes", LANES)
def test_cycle_model(lanes, seed):
    """With no stalls and the cocotb driver's protocol (``drain``) the run takes
    ``golden.requant_cycles``, less one known difference of these testbenches: the first
    beat is offered in cycle 0, not one edge later (1). (A pass's rows are offered in the
    cycle after its last parameter beat is taken, where the cocotb source loses an edge; the
    requantizer takes none in that cycle either, as the beat is being written.)"""
    rng = np.random.default_rng(seed + 4)
    for m in (1, 9):
        for n_passes in (1, 3):
            passes = [(realistic_params(rng, lanes), rng.integers(-1000, 1000, (m, lanes)))
                      for _ in range(n_passes)]
            expect = golden.requant_cycles(m, n_passes * lanes, lanes) - 1
            assert run_passes(lanes, passes, drain=True) == expect, f"M={m}, {n_passes} passes"


def test_rows_offered_during_parameter_load_wait(seed):
    """Rows offered while a parameter load is half done wait for it and use the new values
    (golden.requantize with the new parameters)."""
    rng = np.random.default_rng(seed + 5)
    lanes = 3
    old, new = realistic_params(rng, lanes), realistic_params(rng, lanes)
    acc = rng.integers(-2**20, 2**20, (4, lanes))
    top, dut, _ = make_top(lanes)

    async def loader(ctx):
        for p in (old, new):
            for c in range(lanes):
                mult, shift, bias = p.channel(c)
                await stream_put(ctx, dut.p_stream, {"multiplier": mult, "shift": shift,
                                                     "bias": bias, "zero_point": p.zero_point,
                                                     "relu": int(p.relu)}, lambda: 3)

    async def rows(ctx):
        await ctx.tick().repeat(4 * lanes + 6)  # the old load is done, the new one started
        for r, row in enumerate(acc):
            beat = {"data": [int(v) for v in row], "last": int(r == len(acc) - 1)}
            await stream_put(ctx, dut.i_stream, beat)

    async def results(ctx):
        got = [list((await stream_get(ctx, dut.o_stream)).data) for _ in acc]
        np.testing.assert_array_equal(np.array(got), golden.requantize(acc, new))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    for tb in (loader, rows, results):
        sim.add_testbench(tb)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("bad", [0, -2, 4.0, True, None])
def test_constructor_check(bad):
    with pytest.raises(TypeError,
                       match=f"Requantizer lanes must be a positive integer, not {bad!r}"):
        Requantizer(bad)
    gc.collect()  # the half-built component is reported unused when collected: do it here


def test_latency_is_requant_stages():
    dut = Requantizer(2)
    Fragment.get(dut, None)  # elaborates (and is not reported as unused)
    assert (dut.lanes, dut.latency) == (2, REQUANT_STAGES)
