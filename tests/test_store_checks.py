"""Amaranth-simulator tests of the STORE checks pipeline (``octet.hdl.store_checks``).

Random STORE fields, biased towards every check's boundary, go through the pipeline for array
widths that are and are not powers of two (a real quotient by 3 and 12); the error code (or
none) and the last n-tile are compared with a transcription of the golden model's checks
(``octet.sim.isa_exec``: same checks, same order), with a memory limit below and at 2**32
(MEM_LIMIT 0); every ``param_src`` (MEMORY, KEEP, SLOTS, unassigned) against the parameter
slots' range; and whether the STORE is one write run (``contiguous`` / ``run_bytes``, as the
store unit's cycle model decides it). Also: the exhaustive reciprocal search and the
constructor's argument checks.
"""

import gc

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from octet.hdl.store_checks import STAGES, StoreChecks, reciprocal
from octet.isa import LAYOUTS, PARAM_RECORD_BYTES, ErrorCode, Opcode, ParamSource, StoreMode

STORE = LAYOUTS[Opcode.STORE]
ACC_ROWS = 256
PARAM_SLOTS = 96
FIELDS = ("mode", "acc_addr", "acc_n_step", "rows", "cols", "dram_addr", "dram_stride",
          "param_addr", "param_src", "param_slot")


def reference(f, cols, acc_rows, mem_limit, param_slots=PARAM_SLOTS):
    """(code or None, last n-tile) as ``octet.sim.isa_exec`` checks a STORE."""
    if f["mode"] > 1 or f["rows"] == 0 or f["cols"] == 0:
        return ErrorCode.MALFORMED, None
    n_tiles = -(-f["cols"] // cols)
    if n_tiles > min(acc_rows, 4095):
        return ErrorCode.MALFORMED, None
    int8 = f["mode"] == StoreMode.INT8.value
    size = 1 if int8 else 4
    src = f["param_src"]
    if src > ParamSource.SLOTS.value:
        return ErrorCode.MALFORMED, None
    slots = int8 and src != ParamSource.MEMORY.value
    from_memory = int8 and src != ParamSource.SLOTS.value
    if from_memory and f["param_addr"] % PARAM_RECORD_BYTES:
        return ErrorCode.MALFORMED, None
    if f["rows"] > 1 and f["dram_stride"] < f["cols"] * size:
        return ErrorCode.MALFORMED, None
    if f["acc_addr"] + (n_tiles - 1) * f["acc_n_step"] + f["rows"] - 1 >= acc_rows:
        return ErrorCode.SPAD_RANGE, n_tiles - 1
    if slots and f["param_slot"] + f["cols"] - 1 >= param_slots:
        return ErrorCode.SPAD_RANGE, n_tiles - 1
    if f["dram_addr"] + (f["rows"] - 1) * f["dram_stride"] + f["cols"] * size > mem_limit:
        return ErrorCode.DRAM_RANGE, n_tiles - 1
    if from_memory and f["param_addr"] + PARAM_RECORD_BYTES * f["cols"] > mem_limit:
        return ErrorCode.DRAM_RANGE, n_tiles - 1
    return None, n_tiles - 1


def reference_run(f, cols):
    """``run_bytes`` when the STORE's bytes are one range of fewer than 2**16 (the store
    unit's write run, as perf-decode's cycle model has it), else None."""
    size = 1 if f["mode"] == StoreMode.INT8.value else 4
    total = (f["rows"] - 1) * f["dram_stride"] + f["cols"] * size
    back_to_back = f["rows"] == 1 or (-(-f["cols"] // cols) == 1 and
                                      f["dram_stride"] == f["cols"] * size)
    return total if back_to_back and total < 1 << 16 else None


def random_fields(rng, cols, mem_limit):
    def pick(*choices):
        return int(choices[rng.integers(len(choices))])

    rows = pick(0, 1, 2, rng.integers(1, 300), rng.integers(0, 1 << 16))
    ncols = pick(0, 1, cols, cols + 1, rng.integers(1, 40), rng.integers(0, 1 << 16),
                 ACC_ROWS * cols, ACC_ROWS * cols + 1)
    mode = pick(0, 1, 1, rng.integers(0, 4))
    size = 1 if mode == 1 else 4
    stride = pick(ncols * size, ncols * size, ncols * size - 1, rng.integers(0, 1 << 32),
                  rng.integers(0, 1 << 12))
    return {
        "param_src": pick(0, 1, 2, 1, 2, 3),
        "param_slot": pick(0, rng.integers(0, PARAM_SLOTS), PARAM_SLOTS - max(ncols, 1),
                           PARAM_SLOTS - max(ncols, 1) + 1, rng.integers(0, 1 << 16))
        % (1 << 16),
        "mode": mode, "rows": rows, "cols": ncols, "dram_stride": stride % (1 << 32),
        "acc_addr": pick(0, rng.integers(0, ACC_ROWS), rng.integers(0, 1 << 16)),
        "acc_n_step": pick(0, rows, rng.integers(0, 64), rng.integers(0, 1 << 16)),
        "dram_addr": pick(0, rng.integers(0, mem_limit), rng.integers(0, 1 << 32)),
        "param_addr": pick(0, 16 * rng.integers(0, mem_limit // 16), rng.integers(0, 1 << 32),
                           mem_limit - 16 * max(ncols, 1)) % (1 << 32),
    }


def word_value(f):
    value = 0
    for name in FIELDS:
        field = STORE[name]
        value |= (f[name] % (1 << field.width)) << field.offset
    return value


@pytest.mark.parametrize("mem_limit", [1 << 20, 1 << 32])
@pytest.mark.parametrize("cols", [4, 3, 12])
def test_checks_match_golden_order(cols, mem_limit):
    rng = np.random.default_rng(cols)
    cases = [random_fields(rng, cols, mem_limit) for _ in range(400)]
    dut = StoreChecks(cols, ACC_ROWS, PARAM_SLOTS)
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    results = []

    async def bench(ctx):
        ctx.set(dut.mem_limit, mem_limit)
        for f in cases:
            ctx.set(dut.word.as_value(), word_value(f))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for _ in range(STAGES - 1):
                assert not ctx.get(dut.done)
                await ctx.tick()
            assert ctx.get(dut.done)
            results.append((ctx.get(dut.fail), ctx.get(dut.code), ctx.get(dut.last_nt),
                            ctx.get(dut.last_row), ctx.get(dut.contiguous),
                            ctx.get(dut.run_bytes)))
            # The outputs hold until the next start.
            await ctx.tick()
            assert not ctx.get(dut.done)
            assert ctx.get(dut.fail) == results[-1][0]

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    codes = set()
    runs = set()
    for f, (fail, code, last_nt, last_row, contiguous, run_bytes) in zip(cases, results,
                                                                         strict=True):
        want, want_nt = reference(f, cols, ACC_ROWS, mem_limit)
        codes.add((want, f["param_src"]))
        assert (fail, code if fail else None) == (want is not None, want), f
        if want_nt is not None:
            assert (last_nt, last_row) == (want_nt, f["rows"] - 1), f
        if want is None:
            want_run = reference_run(f, cols)
            runs.add(want_run is not None)
            assert (contiguous, run_bytes if contiguous else None) == \
                (want_run is not None, want_run), f
    assert {code for code, _ in codes} == {None, ErrorCode.MALFORMED, ErrorCode.SPAD_RANGE,
                                           ErrorCode.DRAM_RANGE}
    # Every parameter source passes and fails; an unassigned one is MALFORMED.
    for src in (ParamSource.MEMORY, ParamSource.KEEP, ParamSource.SLOTS):
        assert (None, src.value) in codes
        assert (ErrorCode.SPAD_RANGE, src.value) in codes
    assert (ErrorCode.MALFORMED, 3) in codes
    assert runs == {False, True}


@pytest.mark.parametrize("divisor", [1, 3, 5, 6, 7, 10, 12, 24])
def test_reciprocal_is_exact(divisor):
    multiplier, shift = reciprocal(divisor, 16)
    x = np.arange(1 << 16, dtype=np.int64)
    assert np.array_equal((x * multiplier) >> shift, x // divisor)
    assert multiplier < 1 << 18  # one DSP multiplier (18 x 18)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize(("args", "message"), [
    ((0, 16), "cols must be a positive integer, not 0"),
    ((4, 0), "acc_rows must be a positive integer, not 0"),
    ((4.0, 16), "cols must be a positive integer, not 4.0"),
    ((True, 16), "cols must be a positive integer, not True"),
    ((4, 16, -1), "param_slots must be a non-negative integer, not -1"),
    ((4, 16, 2.0), "param_slots must be a non-negative integer, not 2.0"),
])
def test_constructor_checks(args, message):
    with pytest.raises(TypeError, match=f"StoreChecks {message}"):
        StoreChecks(*args)
    gc.collect()  # the half-built component is reported unused when collected: do it here
