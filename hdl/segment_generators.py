"""Address generators of the load unit: LOAD rows and IM2COL patches as byte segments.

Both turn one (already validated) instruction into a sequence of *segments*: a byte range of
device memory (or a zero segment for padding) and the first scratchpad row it fills. The load
unit issues bus reads for them and realigns the returned beats (:mod:`.read_aligner`).

* :class:`LoadGenerator`: DRAM row i at ``dram_addr + i*dram_stride`` -> scratchpad rows from
  ``spad_addr + i*spad_stride``; one segment per row, running sums only.
* :class:`Im2colGenerator`: for each output pixel, kernel position and channel chunk, the
  R-byte slice of the NHWC input (or zeros outside the image), in scratchpad order; pixel
  coordinates are stepped incrementally and the address goes through a 3-stage pipeline.

Each advances only while ``room`` says the consumer can take ``PIPELINE_SLACK`` more segments,
so no stage ever stalls. Tested through ``tests/test_accelerator_units.py`` and the
accelerator tests against :mod:`octet.sim.isa_sim`.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from octet.isa import LAYOUTS, Opcode

__all__ = ["segment_descriptor", "LoadGenerator", "Im2colGenerator", "PIPELINE_SLACK"]

PIPELINE_SLACK = 4


def segment_descriptor(bus_bytes):
    return data.StructLayout({
        "addr": 32,            # bus-aligned start of the read
        "beats": 16,
        "offset": range(bus_bytes),
        "nbytes": 17,
        "zero": 1,             # no read: zero rows
        "spad_row": 16,
        "last": 1,             # final segment of the instruction
    })


def _segment(m, out, bus_bytes, addr, nbytes, zero, spad_row, last):
    lg = (bus_bytes - 1).bit_length()
    offset = addr[:lg] if lg else 0
    m.d.comb += [
        out.addr.eq(addr & ~(bus_bytes - 1)),
        out.offset.eq(offset),
        out.beats.eq((offset + nbytes + bus_bytes - 1) >> lg),
        out.nbytes.eq(nbytes), out.zero.eq(zero), out.spad_row.eq(spad_row),
        out.last.eq(last),
    ]


class LoadGenerator(wiring.Component):
    """Segments of a LOAD instruction.

    Ports
    -----
    start : In(1)
        Begin with ``instr`` (held stable until ``done``).
    instr : In(LAYOUTS[Opcode.LOAD])
    rows_per_dram_row : In(16)
        ceil(row_bytes / row width), computed by the unit's range check.
    room : In(1)
        The consumer can take ``PIPELINE_SLACK`` more segments.
    o_seg : Out(segment descriptor), with ``valid`` only (no backpressure: see ``room``).
    busy : Out(1)
    """

    def __init__(self, bus_bytes):
        self._bus = bus_bytes
        super().__init__({
            "start": In(1), "instr": In(LAYOUTS[Opcode.LOAD]), "room": In(1),
            "o_seg": Out(segment_descriptor(bus_bytes)), "o_valid": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ins = self.instr
        row = Signal(16)
        addr = Signal(32)
        spad = Signal(16)
        m.d.comb += self.busy.eq(row != 0)
        with m.If(self.start):
            m.d.sync += [row.eq(ins.rows), addr.eq(ins.dram_addr), spad.eq(ins.spad_addr)]
        with m.Elif((row != 0) & self.room):
            m.d.comb += self.o_valid.eq(1)
            _segment(m, self.o_seg, self._bus, addr, ins.row_bytes, 0, spad, row == 1)
            m.d.sync += [row.eq(row - 1), addr.eq(addr + ins.dram_stride),
                         spad.eq(spad + ins.spad_stride)]
        return m


class Im2colGenerator(wiring.Component):
    """Segments of an IM2COL instruction for an array with ``rows`` input lanes.

    Ports
    -----
    start : In(1)
        Begin with ``instr`` (stable until done); ``ix_start`` = ox0*stride - pad and
        ``iy_start`` = oy0*stride - pad are precomputed by the unit.
    instr : In(LAYOUTS[Opcode.IM2COL])
    ix_start, iy_start : In(signed(18))
    room : In(1)
    o_seg, o_valid : Out
    busy : Out(1)
    """

    def __init__(self, bus_bytes, rows):
        self._bus = bus_bytes
        self._rows = rows
        super().__init__({
            "start": In(1), "instr": In(LAYOUTS[Opcode.IM2COL]),
            "ix_start": In(signed(18)), "iy_start": In(signed(18)), "room": In(1),
            "o_seg": Out(segment_descriptor(bus_bytes)), "o_valid": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        R = self._rows
        ins = self.instr
        remaining = Signal(16)       # pixels left, including the current one
        ox = Signal(12)
        ix_base = Signal(signed(18))
        iy_base = Signal(signed(18))
        ky = Signal(4)
        kx = Signal(4)
        cc_bytes = Signal(13)        # cc * R
        spad = Signal(16)

        # Stage A: coordinates of the current segment.
        a_valid, a_last = Signal(), Signal()
        a_iy, a_ix = Signal(signed(18)), Signal(signed(18))
        a_cc, a_spad = Signal(13), Signal(16)
        # Stage B: in-bounds flag and pixel index.
        b_valid, b_last, b_inb = Signal(), Signal(), Signal()
        b_pix, b_cc, b_spad = Signal(32), Signal(13), Signal(16)
        # Stage C: byte address.
        c_valid, c_last, c_inb = Signal(), Signal(), Signal()
        c_addr, c_cc, c_spad = Signal(32), Signal(13), Signal(16)

        pipe_busy = a_valid | b_valid | c_valid
        m.d.comb += self.busy.eq((remaining != 0) | pipe_busy)

        last_cc = cc_bytes + R >= ins.channels
        last_kx = kx == ins.kernel_w - 1
        last_ky = ky == ins.kernel_h - 1
        step = (remaining != 0) & self.room
        m.d.sync += [a_valid.eq(step), b_valid.eq(a_valid), c_valid.eq(b_valid)]
        with m.If(self.start):
            m.d.sync += [remaining.eq(ins.count), ox.eq(ins.ox0), ix_base.eq(self.ix_start),
                         iy_base.eq(self.iy_start), ky.eq(0), kx.eq(0), cc_bytes.eq(0),
                         spad.eq(ins.spad_addr)]
        with m.Elif(step):
            m.d.sync += [a_iy.eq(iy_base + ky), a_ix.eq(ix_base + kx), a_cc.eq(cc_bytes),
                         a_spad.eq(spad), spad.eq(spad + 1),
                         a_last.eq(last_cc & last_kx & last_ky & (remaining == 1))]
            m.d.sync += cc_bytes.eq(Mux(last_cc, 0, cc_bytes + R))
            with m.If(last_cc):
                m.d.sync += kx.eq(Mux(last_kx, 0, kx + 1))
                with m.If(last_kx):
                    m.d.sync += ky.eq(Mux(last_ky, 0, ky + 1))
                    with m.If(last_ky):
                        m.d.sync += remaining.eq(remaining - 1)
                        with m.If(ox == ins.out_w - 1):
                            m.d.sync += [ox.eq(0), ix_base.eq(-ins.pad),
                                         iy_base.eq(iy_base + ins.stride)]
                        with m.Else():
                            m.d.sync += [ox.eq(ox + 1), ix_base.eq(ix_base + ins.stride)]

        m.d.sync += [
            b_last.eq(a_last), b_cc.eq(a_cc), b_spad.eq(a_spad),
            b_inb.eq((a_iy >= 0) & (a_iy < ins.height) & (a_ix >= 0) & (a_ix < ins.width)),
            b_pix.eq((a_iy * ins.width + a_ix)[:32]),
            c_last.eq(b_last), c_cc.eq(b_cc), c_spad.eq(b_spad), c_inb.eq(b_inb),
            c_addr.eq((ins.x_addr + b_pix * ins.channels + b_cc)[:32]),
        ]
        nbytes = Mux(ins.channels - c_cc < R, ins.channels - c_cc, R)
        m.d.comb += self.o_valid.eq(c_valid)
        _segment(m, self.o_seg, self._bus, c_addr, nbytes, ~c_inb, c_spad, c_last)
        return m
