"""Amaranth-simulator tests of ``ErrorControl`` (the accelerator's halts, errors, completion).

Directed scenarios: a unit's error halts the other units a cycle later and is reported with its
code and pc, a later error does not replace it, and the run finishes once the bus is quiet;
two units waiting for tokens nobody produces end as DEADLOCK at the lower pc; idle units after
END finish without an error; ``start`` clears everything. The accelerator-level behaviour is
covered by ``tests/test_accelerator_rtl.py``.
"""

from amaranth.sim import Simulator

from octet.hdl.error_control import DEADLOCK_CYCLES, ErrorControl
from octet.isa import ErrorCode

UNITS = ("fetch", "kv_load", "load", "compute", "kv_store", "store")


def run(bench):
    dut = ErrorControl()
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def testbench(ctx):
        await bench(ctx, dut)

    sim.add_testbench(testbench)
    sim.run()


async def start(ctx, dut):
    """A program start as the accelerator makes it: start, then start_d, running from start."""
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)
    ctx.set(dut.start_d, 1)
    ctx.set(dut.running, 1)
    await ctx.tick()
    ctx.set(dut.start_d, 0)


def test_first_error_halts_the_others_and_is_reported():
    async def bench(ctx, dut):
        for name in UNITS:
            ctx.set(getattr(dut, name).busy, 1)
        ctx.set(dut.read_busy, 1)
        await start(ctx, dut)
        await ctx.tick().repeat(3)
        assert not any(ctx.get(getattr(dut, name).halt) for name in UNITS)
        ctx.set(dut.load.error.valid, 1)
        ctx.set(dut.load.error.code, ErrorCode.SPAD_RANGE)
        ctx.set(dut.load.error.pc, 0x48)
        await ctx.tick()
        # The faulting unit halts itself; every other one from a flip-flop, a cycle later.
        assert [ctx.get(getattr(dut, name).halt) for name in UNITS] == [1, 1, 0, 1, 1, 1]
        ctx.set(dut.compute.error.valid, 1)          # later: must not replace the first
        ctx.set(dut.compute.error.code, ErrorCode.MALFORMED)
        ctx.set(dut.compute.error.pc, 0x50)
        await ctx.tick().repeat(3)
        assert ctx.get(dut.err_latched)
        assert ctx.get(dut.err_code) == ErrorCode.SPAD_RANGE
        assert ctx.get(dut.err_pc) == 0x48
        # Not finished while a bus transfer is in flight, then within a few cycles.
        await ctx.tick().repeat(5)
        assert not ctx.get(dut.finished)
        ctx.set(dut.read_busy, 0)
        for _ in range(3):
            await ctx.tick()
            if ctx.get(dut.finished):
                break
        assert ctx.get(dut.finished)
        # The next start clears the error and the halts.
        for name in ("load", "compute"):
            ctx.set(getattr(dut, name).error.valid, 0)
        ctx.set(dut.running, 0)
        await start(ctx, dut)
        assert not ctx.get(dut.err_latched)
        assert ctx.get(dut.err_code) == ErrorCode.NONE
        assert not any(ctx.get(getattr(dut, name).halt) for name in UNITS)

    run(bench)


def test_deadlock_reports_the_oldest_waiting_pc():
    async def bench(ctx, dut):
        ctx.set(dut.fetch.ended, 1)
        ctx.set(dut.fetch.queues_empty, 1)
        for name, pc in (("compute", 0x30), ("store", 0x20)):
            unit = getattr(dut, name)
            ctx.set(unit.busy, 1)
            ctx.set(unit.waiting, 1)
            ctx.set(unit.pc, pc)
        await start(ctx, dut)
        for _ in range(DEADLOCK_CYCLES + 10):
            await ctx.tick()
            if ctx.get(dut.err_latched):
                break
        assert ctx.get(dut.err_latched)
        assert all(ctx.get(getattr(dut, name).halt) for name in UNITS)
        await ctx.tick().repeat(2)
        assert ctx.get(dut.err_code) == ErrorCode.DEADLOCK
        assert ctx.get(dut.err_pc) == 0x20

    run(bench)


def test_finishes_without_error_once_idle_after_end():
    async def bench(ctx, dut):
        ctx.set(dut.fetch.ended, 1)
        ctx.set(dut.fetch.queues_empty, 1)
        ctx.set(dut.instr_stage_busy, 0b010)
        await start(ctx, dut)
        await ctx.tick().repeat(4)
        assert not ctx.get(dut.finished)
        ctx.set(dut.instr_stage_busy, 0)
        for _ in range(4):
            await ctx.tick()
            if ctx.get(dut.finished):
                break
        assert ctx.get(dut.finished)
        assert not ctx.get(dut.err_latched)

    run(bench)
