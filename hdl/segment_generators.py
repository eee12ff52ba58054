"""Address generators of the load unit: LOAD rows and IM2COL patches as byte segments.

Both turn one (already validated) instruction into a sequence of *segments*: a byte range of
device memory (or a zero segment for padding) and the first scratchpad row it fills. The load
unit issues bus reads for them and realigns the returned beats (:mod:`.read_aligner`).

* :class:`LoadGenerator`: DRAM row i at ``dram_addr + i*dram_stride`` -> scratchpad rows from
  ``spad_addr + i*spad_stride``; one segment per row, running sums only.
* :class:`Im2colGenerator`: for each output pixel, kernel position and channel chunk, the
  R-byte slice of the NHWC input (or zeros outside the image), in scratchpad order; pixel
  coordinates and byte addresses are stepped as running sums (the products they step by are
  computed once per instruction by :mod:`.load_checks`), and each segment goes through a
  3-stage pipeline whose last stage is the registered descriptor.

Each advances only while ``room`` says the consumer can take ``PIPELINE_SLACK`` more segments,
so no stage ever stalls. For timing, ``start`` is registered inside each generator (so the
flip-flop that loads the generator's state sits beside it), and the IM2COL generator's step
enable and loop-wrap conditions are flip-flops computed a cycle early: every register's enable
is one LUT of flip-flops. Tested by ``tests/test_segment_generators.py`` (Amaranth simulator,
against a Python reference of each instruction's segments) and through the load unit by the
accelerator tests against :mod:`octet.sim.isa_sim`.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from octet.isa import LAYOUTS, Opcode

__all__ = ["segment_descriptor", "LoadGenerator", "Im2colGenerator", "PIPELINE_SLACK"]

# Segments a generator may still emit after ``room`` was computed from the queue counts: the
# IM2COL generator's steps in flight (its 3-stage pipeline and its registered step enable,
# which samples ``room`` a cycle late) and one spare.
PIPELINE_SLACK = 5


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
    """Register the segment descriptor of a read of ``nbytes`` bytes from ``addr``."""
    lg = (bus_bytes - 1).bit_length()
    offset = addr[:lg] if lg else 0
    m.d.sync += [
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
        Begin with ``instr`` (held stable until not ``busy``); registered here, so the
        generator starts in the next cycle (and is ``busy`` from then on).
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
        left = Signal()             # row != 0, kept as a flag
        one = Signal()              # row == 1
        started = Signal()          # ``start``, registered
        m.d.sync += started.eq(self.start)
        m.d.comb += self.busy.eq(started | left | self.o_valid)
        m.d.sync += self.o_valid.eq(0)
        with m.If(started):
            m.d.sync += [row.eq(ins.rows), addr.eq(ins.dram_addr), spad.eq(ins.spad_addr),
                         left.eq(ins.rows != 0), one.eq(ins.rows == 1)]
        with m.Elif(left & self.room):
            # The segment is registered: it leaves the cycle after its step.
            m.d.sync += self.o_valid.eq(1)
            _segment(m, self.o_seg, self._bus, addr, ins.row_bytes, 0, spad, one)
            m.d.sync += [row.eq(row - 1), addr.eq(addr + ins.dram_stride),
                         spad.eq(spad + ins.spad_stride), left.eq(~one), one.eq(row == 2)]
        return m




class Im2colGenerator(wiring.Component):
    """Segments of an IM2COL instruction for an array with ``rows`` input lanes.

    The byte address of every segment is kept as running sums (no multiplier in the
    per-segment path): the unit precomputes, once per instruction, the products below.

    Ports
    -----
    start : In(1)
        Begin with ``instr`` and the set-up values (all stable until not ``busy``);
        registered here, so the generator starts in the next cycle.
    instr : In(LAYOUTS[Opcode.IM2COL])
    ix_start, iy_start : In(signed(18))
        ox0*stride - pad and oy0*stride - pad.
    pix_start : In(32)
        Address of input pixel (iy_start, ix_start): x_addr + (iy_start*width + ix_start) *
        channels, modulo 2**32 (only in-image addresses are used, and they are exact).
    line_start : In(32)
        Address of input pixel (iy_start, -pad), likewise.
    wc, sc, swc : In(32)
        width*channels, stride*channels and stride*width*channels.
    room : In(1)
    o_seg, o_valid : Out
    busy : Out(1)
    """

    def __init__(self, bus_bytes, rows):
        self._bus = bus_bytes
        self._rows = rows
        super().__init__({
            "start": In(1), "instr": In(LAYOUTS[Opcode.IM2COL]),
            "ix_start": In(signed(18)), "iy_start": In(signed(18)),
            "pix_start": In(32), "line_start": In(32),
            "wc": In(32), "sc": In(32), "swc": In(32), "room": In(1),
            "o_seg": Out(segment_descriptor(bus_bytes)), "o_valid": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        R = self._rows
        ins = self.instr
        remaining = Signal(16)       # pixels left, including the current one
        ix_base = Signal(signed(18))
        iy_base = Signal(signed(18))
        ky = Signal(4)
        kx = Signal(4)
        cc_bytes = Signal(13)        # cc * R
        spad = Signal(16)
        line_addr = Signal(32)       # address of input pixel (iy_base, -pad)
        pix_addr = Signal(32)        # address of input pixel (iy_base, ix_base)
        row_addr = Signal(32)        # ... + ky * width * channels
        col_addr = Signal(32)        # ... + kx * channels
        # Wrap conditions of the loop counters, kept as flags a step ahead.
        last_cc, last_kx, last_ky, last_ox, last_px = (Signal(name=n) for n in (
            "last_cc", "last_kx", "last_ky", "last_ox", "last_px"))
        ox_left = Signal(12)         # out_w - 1 - ox
        more = Signal()              # remaining != 0

        # Stage A: coordinates of the current segment.
        a_valid, a_last = Signal(), Signal()
        a_iy, a_ix = Signal(signed(18)), Signal(signed(18))
        a_cc, a_spad, a_addr = Signal(13), Signal(16), Signal(32)
        # Stage B: in-bounds flag, byte address and length.
        b_valid, b_last, b_inb = Signal(), Signal(), Signal()
        b_addr, b_nbytes, b_spad = Signal(32), Signal(range(R + 1)), Signal(16)
        # Stage C: the registered segment (o_seg).

        # ``start``, registered: it loads the state below, so it is kept beside it.
        started = Signal()
        m.d.sync += started.eq(self.start)
        # The step enable, a flip-flop: ``more`` of the next cycle and ``room`` of this one
        # (so ``room`` is sampled a cycle late; PIPELINE_SLACK counts that step).
        step = Signal()
        m.d.comb += self.busy.eq(started | more | a_valid | b_valid | self.o_valid)

        # Tests of instruction fields, registered (the instruction is held for several
        # cycles before start), so that start and the wraps only select flip-flops.
        one_cc, one_kx, one_ky, one_ox, count_nz = (Signal(name=n) for n in (
            "one_cc", "one_kx", "one_ky", "one_ox", "count_nz"))
        out_w_m1 = Signal(12)
        first_ox_left = Signal(12)
        # kernel_w - 2 and kernel_h - 2 (mod 16): ``k + 2 == kernel`` is ``k == kernel - 2``
        # while not on the last value (k <= kernel - 2, so nothing wraps).
        kw_m2, kh_m2 = Signal(4), Signal(4)
        m.d.sync += [kw_m2.eq(ins.kernel_w - 2), kh_m2.eq(ins.kernel_h - 2)]
        m.d.sync += [one_cc.eq(ins.channels <= R), one_kx.eq(ins.kernel_w == 1),
                     one_ky.eq(ins.kernel_h == 1), one_ox.eq(ins.out_w == 1),
                     count_nz.eq(ins.count != 0),
                     out_w_m1.eq(ins.out_w - 1), first_ox_left.eq(ins.out_w - 1 - ins.ox0)]

        # Which loops the next step wraps, as flags: the kernel column (kx) advances when
        # the channel chunk wraps, the kernel row (ky) when both wrap, the pixel when all
        # three do. Each register group is enabled by ``started | step & <its flag>``.
        wrap_ky, wrap_px = Signal(name="wrap_ky"), Signal(name="wrap_px")
        wrap_kx = last_cc
        # The loop flags after a step (each changes only when its loop advances).
        next_last_cc = Mux(last_cc, one_cc, cc_bytes + 2 * R >= ins.channels)
        next_last_kx = Mux(wrap_kx, Mux(last_kx, one_kx, kx == kw_m2), last_kx)
        next_last_ky = Mux(wrap_ky, Mux(last_ky, one_ky, ky == kh_m2), last_ky)
        next_more = Signal()
        with m.If(started):
            m.d.comb += next_more.eq(count_nz)
        with m.Elif(step & wrap_px):
            m.d.comb += next_more.eq(~last_px)
        with m.Else():
            m.d.comb += next_more.eq(more)
        m.d.sync += [more.eq(next_more), step.eq(next_more & self.room)]
        # ``step & ~started`` as a flip-flop of its own (``started`` is ``start`` registered):
        # it enables stage A, so ``step`` fans out only to the loop state.
        a_step = Signal()
        m.d.sync += a_step.eq(next_more & self.room & ~self.start)

        m.d.sync += [a_valid.eq(a_step), b_valid.eq(a_valid), self.o_valid.eq(b_valid)]
        with m.If(a_step):
            m.d.sync += [a_iy.eq(iy_base + ky), a_ix.eq(ix_base + kx), a_cc.eq(cc_bytes),
                         a_addr.eq(col_addr), a_spad.eq(spad), spad.eq(spad + 1),
                         a_last.eq(wrap_px & last_px)]
        with m.If(started):
            m.d.sync += [remaining.eq(ins.count), last_px.eq(ins.count == 1),
                         ox_left.eq(first_ox_left), last_ox.eq(first_ox_left == 0),
                         ix_base.eq(self.ix_start), iy_base.eq(self.iy_start),
                         ky.eq(0), kx.eq(0), cc_bytes.eq(0),
                         last_cc.eq(one_cc), last_kx.eq(one_kx), last_ky.eq(one_ky),
                         wrap_ky.eq(one_cc & one_kx), wrap_px.eq(one_cc & one_kx & one_ky),
                         spad.eq(ins.spad_addr), line_addr.eq(self.line_start),
                         pix_addr.eq(self.pix_start), row_addr.eq(self.pix_start),
                         col_addr.eq(self.pix_start)]
        with m.Elif(step):
            m.d.sync += [cc_bytes.eq(Mux(last_cc, 0, cc_bytes + R)),
                         last_cc.eq(next_last_cc), last_kx.eq(next_last_kx),
                         last_ky.eq(next_last_ky),
                         wrap_ky.eq(next_last_cc & next_last_kx),
                         wrap_px.eq(next_last_cc & next_last_kx & next_last_ky)]
            with m.If(wrap_kx):
                m.d.sync += [kx.eq(Mux(last_kx, 0, kx + 1)), col_addr.eq(col_addr + ins.channels)]
            with m.If(wrap_ky):
                next_row = row_addr + self.wc
                m.d.sync += [ky.eq(Mux(last_ky, 0, ky + 1)), row_addr.eq(next_row),
                             col_addr.eq(next_row)]
            with m.If(wrap_px):
                m.d.sync += [remaining.eq(remaining - 1), last_px.eq(remaining == 2)]
                with m.If(last_ox):
                    next_line = line_addr + self.swc
                    m.d.sync += [ox_left.eq(out_w_m1), last_ox.eq(one_ox),
                                 ix_base.eq(-ins.pad), iy_base.eq(iy_base + ins.stride),
                                 line_addr.eq(next_line), pix_addr.eq(next_line),
                                 row_addr.eq(next_line), col_addr.eq(next_line)]
                with m.Else():
                    next_pix = pix_addr + self.sc
                    m.d.sync += [ox_left.eq(ox_left - 1), last_ox.eq(ox_left == 1),
                                 ix_base.eq(ix_base + ins.stride),
                                 pix_addr.eq(next_pix), row_addr.eq(next_pix),
                                 col_addr.eq(next_pix)]

        rest = Signal(13)
        m.d.comb += rest.eq(ins.channels - a_cc)
        m.d.sync += [
            b_last.eq(a_last), b_spad.eq(a_spad),
            b_inb.eq((a_iy >= 0) & (a_iy < ins.height) & (a_ix >= 0) & (a_ix < ins.width)),
            b_addr.eq(a_addr + a_cc), b_nbytes.eq(Mux(rest < R, rest, R)),
        ]
        with m.If(b_valid):
            _segment(m, self.o_seg, self._bus, b_addr, b_nbytes, ~b_inb, b_spad, b_last)
        return m
