"""Amaranth-simulator tests of ``PerfCounters``.

Reference: Python counts of random events. Each count must equal the events up to two cycles
before (three for the DMA and byte counts, registered once more), nothing is counted while not
running, and ``start`` clears every count. The accelerator's exact counts are checked by
``tests/test_accelerator_rtl.py``.
"""

import random

import pytest
from amaranth.sim import Simulator

from octet.hdl.perf_counters import COUNTERS, PerfCounters

B = 8


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_bus_width():
    with pytest.raises(TypeError, match=r"Counter bus width must be a positive number of bytes, "
                                        r"not 0"):
        PerfCounters(0)


def test_counts_events(seed):
    rng = random.Random(seed)
    dut = PerfCounters(B)

    async def bench(ctx):
        counts = dict.fromkeys(COUNTERS, 0)
        history = []                      # per cycle: the increments of every counter
        for cycle in range(600):
            start = rng.random() < 0.01
            ev = {"running": rng.random() < 0.9, "computing": rng.random() < 0.5,
                  "dispatched": rng.random() < 0.3, "read_busy": rng.random() < 0.5,
                  "write_busy": rng.random() < 0.5, "read_beat": rng.random() < 0.4,
                  "write_beat": rng.random() < 0.4, "write_accept": rng.random() < 0.4}
            strb = rng.getrandbits(B)
            for name, value in ev.items():
                ctx.set(getattr(dut, name), value)
            ctx.set(dut.write_strb, strb)
            ctx.set(dut.start, start)
            run = ev["running"]
            history.append({
                "CYCLES": run, "COMPUTE_CYCLES": run and ev["computing"],
                "BYTES_READ": B if run and ev["read_beat"] else 0,
                "BYTES_WRITTEN": bin(strb).count("1") if run and ev["write_accept"] else 0,
                "INSTRUCTIONS": run and ev["dispatched"],
                "DMA_BUSY_CYCLES": run and (ev["read_busy"] or ev["write_busy"]),
                "DMA_STALL_CYCLES": run and (ev["read_busy"] or ev["write_busy"]) and not
                (ev["read_beat"] or ev["write_beat"])})
            for name in COUNTERS:
                assert ctx.get(getattr(dut, name.lower())) == counts[name], (cycle, name)
            await ctx.tick()
            # After this edge a count holds the increments of events two (DMA and bytes:
            # three) cycles back, unless start was high now, which clears it.
            for name in COUNTERS:
                lag = 3 if name.startswith(("DMA", "BYTES")) else 2
                if start:
                    counts[name] = 0
                elif len(history) >= lag:
                    counts[name] += int(history[-lag][name])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
