"""Amaranth-simulator tests of the load unit's segment generators.

Reference: the segments each instruction's definition (``octet.isa``) implies, computed here in
Python. ``room`` is toggled at random; every segment must come out once, in order, with the
right descriptor, and once ``room`` falls at most ``PIPELINE_SLACK - 1`` more segments may
appear (the load unit's queues rely on that bound).
"""

import random

import pytest
from amaranth.sim import Simulator

from octet.hdl.segment_generators import PIPELINE_SLACK, Im2colGenerator, LoadGenerator

B = 8       # bus bytes
R = 4       # input lanes


def _descriptor(addr, nbytes, zero, spad, last):
    """The fields of a segment that the load unit uses (a zero segment's address is unused)."""
    offset = addr % B
    if zero:
        return {"zero": 1, "nbytes": nbytes, "spad_row": spad % (1 << 16), "last": last}
    return {"zero": 0, "nbytes": nbytes, "spad_row": spad % (1 << 16), "last": last,
            "addr": (addr - offset) % (1 << 32), "offset": offset,
            "beats": (offset + nbytes + B - 1) // B}


def _im2col_reference(f):
    segs = []
    cc_n = -(-f["channels"] // R)
    for q in range(f["count"]):
        ox = (f["ox0"] + q) % f["out_w"]
        oy = f["oy0"] + (f["ox0"] + q) // f["out_w"]
        for ky in range(f["kernel_h"]):
            for kx in range(f["kernel_w"]):
                for cc in range(cc_n):
                    iy = oy * f["stride"] + ky - f["pad"]
                    ix = ox * f["stride"] + kx - f["pad"]
                    inb = 0 <= iy < f["height"] and 0 <= ix < f["width"]
                    addr = f["x_addr"] + (iy * f["width"] + ix) * f["channels"] + cc * R
                    segs.append(_descriptor(addr, min(R, f["channels"] - cc * R), not inb,
                                            f["spad_addr"] + len(segs), 0))
    segs[-1]["last"] = 1
    return segs


def _run_generator(dut, fields, setup, n_expected, rng):
    """Start ``dut`` with ``fields``/``setup``; return the segments and the room check."""
    got = []

    async def tb(ctx):
        for name, value in fields.items():
            ctx.set(getattr(dut.instr, name), value)
        for name, value in setup.items():
            ctx.set(getattr(dut, name), value)
        await ctx.tick().repeat(2)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        room, low_since = 1, 0
        for _cycle in range(50 * n_expected + 100):
            if rng.random() < 0.15:
                room ^= 1
                low_since = 0
            ctx.set(dut.room, room)
            if ctx.get(dut.o_valid):
                seg = ctx.get(dut.o_seg)
                d = {k: getattr(seg, k) for k in ("zero", "nbytes", "spad_row", "last")}
                if not d["zero"]:
                    d.update(addr=seg.addr, offset=seg.offset, beats=seg.beats)
                got.append(d)
                if not room:
                    low_since += 1
                    assert low_since < PIPELINE_SLACK, "segments beyond PIPELINE_SLACK"
            if not ctx.get(dut.busy):
                break
            await ctx.tick()
        assert not ctx.get(dut.busy), "generator still busy"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return got


@pytest.mark.parametrize("case", range(12))
def test_im2col_against_reference(seed, case):
    rng = random.Random(seed * 1000 + case)
    f = {"height": rng.randint(1, 6), "width": rng.randint(1, 6),
         "channels": rng.randint(1, 3 * R + 1), "kernel_h": rng.randint(1, 3),
         "kernel_w": rng.randint(1, 3), "stride": rng.randint(1, 3), "pad": rng.randint(0, 2),
         "x_addr": rng.randrange(1 << 20), "spad_addr": rng.randrange((1 << 16) - 8, 1 << 16)}
    f["out_w"] = rng.randint(1, 5)
    f["ox0"] = rng.randrange(f["out_w"])
    f["oy0"] = rng.randint(0, 3)
    f["count"] = rng.randint(1, 7)
    ix0 = f["ox0"] * f["stride"] - f["pad"]
    iy0 = f["oy0"] * f["stride"] - f["pad"]
    wc = f["width"] * f["channels"]
    setup = {"ix_start": ix0, "iy_start": iy0,
             "pix_start": (f["x_addr"] + (iy0 * f["width"] + ix0) * f["channels"]) % (1 << 32),
             "line_start": (f["x_addr"] + iy0 * wc - f["pad"] * f["channels"]) % (1 << 32),
             "wc": wc, "sc": f["stride"] * f["channels"], "swc": f["stride"] * wc}
    expected = _im2col_reference(f)
    got = _run_generator(Im2colGenerator(B, R), f, setup, len(expected), rng)
    assert got == expected


@pytest.mark.parametrize("case", range(6))
def test_load_against_reference(seed, case):
    rng = random.Random(seed * 1000 + 500 + case)
    f = {"rows": rng.randint(1, 9), "row_bytes": rng.randint(1, 40),
         "dram_addr": rng.randrange(1 << 20), "dram_stride": rng.randrange(64),
         "spad_addr": rng.randrange(1 << 16), "spad_stride": rng.randint(0, 6)}
    expected = [_descriptor(f["dram_addr"] + i * f["dram_stride"], f["row_bytes"], False,
                            f["spad_addr"] + i * f["spad_stride"], int(i == f["rows"] - 1))
                for i in range(f["rows"])]
    got = _run_generator(LoadGenerator(B), f, {}, len(expected), rng)
    assert got == expected
