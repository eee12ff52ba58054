"""Amaranth-simulator tests of the systolic array (``octet.hdl.systolic_array``).

Sequences of weight tiles and activation blocks are streamed through the array by separate
producer and consumer testbenches (``octet.sim.amaranth_streams``); every result row is
compared with the reference, ``octet.sim.golden.matmul_int32`` of the tile's A and W. Also
checked: random stalls on all three streams, extreme operands, every weight value through
the edge registers (w, 3w, -w), bubble-free back-to-back tiles, the cycle model
``golden.array_cycles``, a reset in the middle of a tile, and the constructor's argument
checks.
"""

import gc

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Fragment, Module, Signal
from amaranth.sim import Simulator

from octet.hdl.systolic_array import SystolicArray
from octet.sim import golden
from octet.sim.amaranth_streams import stream_get, stream_put

SIZES = [(1, 1), (2, 3), (3, 2), (4, 4)]
IDS = [f"{r}x{c}" for r, c in SIZES]
#: The cocotb sources the cycle model was written for offer their first beat one clock edge
#: after it is queued (one of ARRAY_DRIVER_OVERHEAD's cycles); these testbenches offer it in
#: cycle 0, and the counter read after the last accepted beat counts the cycles up to it.
EARLY_START = 1


def make_top(rows, cols):
    """The array under an explicit ``sync`` domain (so tests can drive its reset) and a
    free-running cycle counter."""
    dut = SystolicArray(rows, cols)
    top = Module()
    top.domains.sync = cd = ClockDomain()
    top.submodules.dut = dut
    cycle = Signal(32)
    top.d.sync += cycle.eq(cycle + 1)
    return top, dut, cd, cycle


def simulate(top, *testbenches, timeout=20_000):
    sim = Simulator(top)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)

    async def watchdog(ctx):
        for _ in range(timeout):  # not tick().repeat(): closing it unfinished raises
            await ctx.tick()
        raise AssertionError(f"simulation still running after {timeout} cycles (deadlock?)")

    sim.add_testbench(watchdog, background=True)
    sim.run()


def random_stall(rng, probability):
    if not probability:
        return None
    return lambda: int(rng.integers(1, 4)) if rng.random() < probability else 0


def random_tiles(rng, rows, cols, ms):
    return [(rng.integers(-128, 128, (m, rows), dtype=np.int8),
             rng.integers(-128, 128, (rows, cols), dtype=np.int8)) for m in ms]


def tile_testbenches(dut, tiles, rng=None, stall=0.0, stamps=None, cycle=None, gate=None):
    """Producer (weights), producer (activations) and consumer testbenches for ``tiles``.

    ``stamps`` collects the cycle counter at each accepted output; ``gate`` is a dict whose
    ``"go"`` entry the testbenches wait for before starting.
    """
    async def wait_gate(ctx):
        while gate is not None and not gate["go"]:
            await ctx.tick()

    async def weights(ctx):
        await wait_gate(ctx)
        pause = random_stall(rng, stall)
        for _, w in tiles:
            for row in w:
                await stream_put(ctx, dut.w_stream, [int(v) for v in row], pause)

    async def activations(ctx):
        await wait_gate(ctx)
        pause = random_stall(rng, stall)
        for a, _ in tiles:
            for i, row in enumerate(a):
                payload = {"data": [int(v) for v in row], "last": int(i == len(a) - 1)}
                await stream_put(ctx, dut.a_stream, payload, pause)

    async def results(ctx):
        await wait_gate(ctx)
        pause = random_stall(rng, stall)
        for t, (a, w) in enumerate(tiles):
            got = []
            for i in range(len(a)):
                beat = await stream_get(ctx, dut.o_stream, pause)
                if stamps is not None:
                    stamps.append(ctx.get(cycle))
                assert beat.last == (i == len(a) - 1), f"tile {t} row {i}: last flag"
                got.append(list(beat.data))
            np.testing.assert_array_equal(np.array(got), golden.matmul_int32(a, w),
                                          err_msg=f"tile {t} (M={len(a)})")

    return weights, activations, results


@pytest.mark.parametrize("rows,cols", SIZES, ids=IDS)
def test_tile_sequence(rows, cols, seed):
    """Tiles with varying M (including M = 1, twice in a row). Reference: golden.matmul_int32."""
    rng = np.random.default_rng(seed)
    ms = [1, 3, rows + cols, 1, 1, 2 * (rows + cols) + 1, 2, 5]
    top, dut, _, _ = make_top(rows, cols)
    simulate(top, *tile_testbenches(dut, random_tiles(rng, rows, cols, ms)))


@pytest.mark.parametrize("rows,cols", SIZES, ids=IDS)
def test_random_stalls(rows, cols, seed):
    """Random idle cycles on the weight, activation and result streams.

    Reference: golden.matmul_int32 of each tile."""
    rng = np.random.default_rng(seed + 1)
    ms = [int(m) for m in rng.integers(1, 2 * (rows + cols) + 2, 8)] + [1]
    top, dut, _, _ = make_top(rows, cols)
    simulate(top, *tile_testbenches(dut, random_tiles(rng, rows, cols, ms), rng, stall=0.4))


@pytest.mark.parametrize("rows,cols", SIZES + [(8, 2)], ids=IDS + ["8x2"])
def test_extreme_values(rows, cols):
    """-128 x -128 (the largest products), 127 x 127, mixed signs, checkerboards.

    Reference: golden.matmul_int32 of each tile."""
    m = rows + 2
    tiles = [(np.full((m, rows), va, np.int8), np.full((rows, cols), vb, np.int8))
             for va, vb in ((-128, -128), (127, 127), (-128, 127), (127, -128))]
    checker = np.where(np.indices((m, rows)).sum(0) % 2, -128, 127).astype(np.int8)
    tiles.append((checker, np.full((rows, cols), -128, np.int8)))
    tiles.append((checker, np.where(np.indices((rows, cols)).sum(0) % 2, 127, -128)
                  .astype(np.int8)))
    top, dut, _, _ = make_top(rows, cols)
    simulate(top, *tile_testbenches(dut, tiles))


@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (4, 4)], ids=["1x1", "2x3", "4x4"])
def test_every_weight_value(rows, cols, seed):
    """All 256 int8 weights pass the edge registers that compute 3w and -w once per column,
    in back-to-back tiles of M = 1 and 2 (the earliest activation after a weight load),
    against activations that include -128 and 127. Reference: golden.matmul_int32."""
    rng = np.random.default_rng(seed + 5)
    n = rows * cols
    values = np.arange(-128, 128)
    values = np.concatenate([values, values[: -len(values) % n]]).astype(np.int8)
    tiles = []
    for t, w in enumerate(values.reshape(-1, rows, cols)):
        a = rng.integers(-128, 128, (1 + t % 2, rows), dtype=np.int8)
        a[0, 0] = (-128, 127)[t % 2]
        tiles.append((a, w))
    top, dut, _, _ = make_top(rows, cols)
    simulate(top, *tile_testbenches(dut, tiles))


@pytest.mark.parametrize("rows,cols", SIZES, ids=IDS)
def test_back_to_back_without_bubbles(rows, cols, seed):
    """With M >= R + C and an always-ready sink, the outputs of consecutive tiles are
    contiguous: first to last accepted output is exactly sum(M) - 1 cycles. The whole run
    takes the cycles that ``golden.array_cycles`` predicts (less EARLY_START). Values are
    checked against golden.matmul_int32."""
    rng = np.random.default_rng(seed + 2)
    m = rows + cols
    tiles = random_tiles(rng, rows, cols, [m] * 6)
    top, dut, _, cycle = make_top(rows, cols)
    stamps = []
    simulate(top, *tile_testbenches(dut, tiles, stamps=stamps, cycle=cycle))
    assert stamps[-1] - stamps[0] == m * len(tiles) - 1
    assert np.all(np.diff(stamps) == 1)
    assert stamps[-1] == golden.array_cycles(m, rows * len(tiles), cols, rows, cols) \
        - EARLY_START


@pytest.mark.parametrize("rows,cols", SIZES, ids=IDS)
def test_cycle_model_small_m(rows, cols, seed):
    """For M below R + C (weight- or drain-bound tiles) the run still takes the cycles of
    golden.array_cycles (less EARLY_START); values against golden.matmul_int32."""
    rng = np.random.default_rng(seed + 3)
    for m in (1, max(1, rows + cols - 2)):
        tiles = random_tiles(rng, rows, cols, [m] * 5)
        top, dut, _, cycle = make_top(rows, cols)
        stamps = []
        simulate(top, *tile_testbenches(dut, tiles, stamps=stamps, cycle=cycle))
        expect = golden.array_cycles(m, rows * len(tiles), cols, rows, cols) - EARLY_START
        assert stamps[-1] == expect, f"M={m}"


@pytest.mark.parametrize("rows,cols", SIZES, ids=IDS)
def test_reset_mid_tile(rows, cols, seed):
    """Reset with two banks loaded, activations and results in flight; then fresh tiles
    (a new weight load into bank 0 first) match golden.matmul_int32."""
    rng = np.random.default_rng(seed + 4)
    top, dut, cd, _ = make_top(rows, cols)
    gate = {"go": False}
    stale = random_tiles(rng, rows, cols, [2 * (rows + cols), 3])

    async def interrupted(ctx):
        ctx.set(dut.o_stream.ready, 1)
        for _, w in stale:
            for row in w:
                await stream_put(ctx, dut.w_stream, [int(v) for v in row])
        a = stale[0][0]
        for row in a[: len(a) // 2 + 1]:  # half of the first tile, no `last`
            await stream_put(ctx, dut.a_stream, {"data": [int(v) for v in row], "last": 0})
        await ctx.tick().repeat(2)
        assert ctx.get(dut.o_stream.valid)  # results are in flight when reset hits
        ctx.set(dut.o_stream.ready, 0)
        ctx.set(cd.rst, 1)
        for _ in range(2):  # a plain tick, unlike tick().repeat(), does not raise DomainReset
            await ctx.tick()
        ctx.set(cd.rst, 0)
        gate["go"] = True

    fresh = random_tiles(rng, rows, cols, [1, rows + cols, 2])
    simulate(top, interrupted, *tile_testbenches(dut, fresh, gate=gate))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "4", None])
def test_constructor_type_checks(bad):
    with pytest.raises(TypeError, match=f"Array rows must be a positive integer, not {bad!r}"):
        SystolicArray(bad, 4)
    with pytest.raises(TypeError, match=f"Array cols must be a positive integer, not {bad!r}"):
        SystolicArray(4, bad)
    gc.collect()  # half-built components are reported unused when collected: do it here


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_constructor_range_checks():
    with pytest.raises(ValueError, match="Array rows must be at most 64, not 65"):
        SystolicArray(65, 1)
    with pytest.raises(ValueError, match="Array cols must be at most 64, not 100"):
        SystolicArray(1, 100)
    gc.collect()
    dut = SystolicArray(64, 1)
    assert (dut.rows, dut.cols, dut.latency) == (64, 1, 66)
    Fragment.get(dut, None)  # the largest size elaborates
