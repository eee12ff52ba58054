"""The STORE instruction's checks, as a five-stage pipeline of short register-to-register steps.

Every check of a STORE (``docs/isa.md``: shape and mode, then the accumulator range, then the
destination and the parameter table against the memory limit) is a sum, product or quotient
of the instruction's fields followed by a compare. Done in one or two cycles these chained a
divider (``ceil(cols / C)`` when C is not a power of two), two DSP products, three adders and
the compares; here every stage holds at most one product or one carry chain:

1. the shape flags, ``rows - 1``, ``cols - 1``, the row's bytes, ``acc_addr + rows``, the
   table's end and a copy of ``mem_limit`` (a multiplexer in the CSR block);
2. the stride flag, ``(cols - 1) // C`` (a shift, or a product by a reciprocal constant that is
   exact for every 16-bit ``cols``), the two 16-bit halves of ``(rows - 1) * dram_stride`` and
   the first row's end;
3. ``(n_tiles - 1) * acc_n_step``, the destination's span, the room left after the first row
   (``mem_limit - dram_addr - row bytes``) and in the accumulator, and the table's compare;
4. each span against its room;
5. the error code of the documented order.

``done`` rises five cycles after ``start`` (the first cycle the instruction word is valid) and
``fail`` / ``code`` / ``last_nt`` / ``last_row`` hold until the next ``start``; the word must
not change in between.

Tested through the store unit by the accelerator tests (every error code and its order,
against :mod:`octet.sim.isa_sim`) and by ``tests/test_store_checks.py`` (random fields against
a Python transcription of the golden model's checks, Amaranth simulator).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from octet.isa import LAYOUTS, PARAM_RECORD_BYTES, ErrorCode, Opcode, StoreMode

__all__ = ["StoreChecks", "reciprocal"]

STAGES = 5


def reciprocal(divisor, width):
    """``(multiplier, shift)`` with ``(x * multiplier) >> shift == x // divisor`` for every
    ``width``-bit ``x`` (checked exhaustively)."""
    for shift in range(width, 2 * width + 2):
        multiplier = -(-(1 << shift) // divisor)
        if all((x * multiplier) >> shift == x // divisor for x in range(1 << width)):
            return multiplier, shift
    raise AssertionError(f"no reciprocal for {divisor}")


class StoreChecks(wiring.Component):
    """Pipelined checks of one STORE instruction.

    Parameters
    ----------
    cols : int
        The array's columns (channels of one n-tile).
    acc_rows : int
        Rows of the accumulator.

    Ports
    -----
    word : In(LAYOUTS[Opcode.STORE])
        The instruction, stable from ``start`` until ``done``.
    mem_limit : In(33)
        Bytes of device memory.
    start : In(1)
        The first cycle of a new ``word``.
    done : Out(1)
        ``fail``, ``code`` and ``last_nt`` are valid (one cycle, ``STAGES`` after ``start``).
    fail : Out(1)
        A check failed; ``code`` is the first error in the documented order.
    code : Out(ErrorCode)
    last_nt : Out(12)
        ``ceil(cols / C) - 1``: the last n-tile (when the shape checks pass).
    last_row : Out(16)
        ``rows - 1``.
    """

    def __init__(self, cols, acc_rows):
        for name, value in (("cols", cols), ("acc_rows", acc_rows)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"StoreChecks {name} must be a positive integer, not {value!r}")
        self._cols = cols
        self._acc_rows = acc_rows
        super().__init__({
            "word": In(LAYOUTS[Opcode.STORE]), "mem_limit": In(33), "start": In(1),
            "done": Out(1), "fail": Out(1), "code": Out(ErrorCode), "last_nt": Out(12),
            "last_row": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        C = self._cols
        ins = self.word
        int8 = ins.mode == StoreMode.INT8
        valid = Signal(STAGES)
        m.d.sync += valid.eq(Cat(self.start, valid[:-1]))
        m.d.comb += self.done.eq(valid[-1])

        # 1.
        bad_shape = Signal()
        rows_m1 = Signal(16)
        cols_m1 = Signal(16)
        row_bytes = Signal(18)
        acc_first = Signal(17)
        param_end = Signal(33)
        limit = Signal(33)
        n_tile_limit = min(self._acc_rows, 4095)
        m.d.sync += [
            # ceil(cols / C) > limit  <=>  cols > limit * C.
            bad_shape.eq((ins.rows == 0) | (ins.cols == 0) | (ins.mode.as_value() > 1) |
                         (ins.cols > n_tile_limit * C) |
                         (int8 & (ins.param_addr[:4] != 0))),
            rows_m1.eq(ins.rows - 1),
            cols_m1.eq(ins.cols - 1),
            row_bytes.eq(Mux(int8, ins.cols, ins.cols << 2)),
            acc_first.eq(ins.acc_addr + ins.rows),
            param_end.eq(ins.param_addr + ins.cols * PARAM_RECORD_BYTES),
            limit.eq(self.mem_limit),
        ]
        m.d.comb += self.last_row.eq(rows_m1)

        # 2.
        bad_stride = Signal()
        last_nt = Signal(12)
        prod_lo = Signal(32)
        prod_hi = Signal(32)
        dram_first = Signal(33)
        if C & (C - 1) == 0:
            quotient = cols_m1 >> (C.bit_length() - 1)
        else:
            multiplier, shift = reciprocal(C, 16)
            quotient = (cols_m1 * multiplier) >> shift
        m.d.sync += [
            # rows > 1 (rows == 0 is bad_shape's).
            bad_stride.eq((rows_m1 != 0) & (ins.dram_stride < row_bytes)),
            last_nt.eq(quotient),
            prod_lo.eq(rows_m1 * ins.dram_stride[:16]),
            prod_hi.eq(rows_m1 * ins.dram_stride[16:]),
            dram_first.eq(ins.dram_addr + row_bytes),
        ]
        m.d.comb += self.last_nt.eq(last_nt)

        # 3. (The ends are compared as spans against the room left: one carry chain each.)
        malformed = Signal()
        acc_span = Signal(28)
        dram_span = Signal(48)
        acc_room = Signal(range(-(1 << 17), self._acc_rows + 1))
        dram_room = Signal(range(-(1 << 34), 1 << 33))
        param_over = Signal()
        m.d.sync += [
            malformed.eq(bad_shape | bad_stride),
            acc_span.eq(last_nt * ins.acc_n_step),
            dram_span.eq(prod_lo + (prod_hi << 16)),
            # acc_addr + span + rows > acc_rows  <=>  span > acc_rows - acc_addr - rows.
            acc_room.eq(self._acc_rows - acc_first),
            dram_room.eq(limit - dram_first),
            param_over.eq(int8 & (param_end > limit)),
        ]

        # 4. A negative room is over, so is a span with bits above the room's width; the
        # compare of the rest is kept apart (a carry chain of its own).
        spad_over = Signal(2)
        dram_over = Signal(2)
        aw, dw = len(acc_room) - 1, len(dram_room) - 1
        m.d.sync += [spad_over.eq(Cat(acc_room[-1] | acc_span[aw:].any(),
                                      acc_span[:aw] > acc_room[:aw])),
                     dram_over.eq(Cat(dram_room[-1] | dram_span[dw:].any(),
                                      dram_span[:dw] > dram_room[:dw]))]

        # 5.
        with m.If(valid[-2]):
            m.d.sync += self.fail.eq(1)
            with m.If(malformed):
                m.d.sync += self.code.eq(ErrorCode.MALFORMED)
            with m.Elif(spad_over.any()):
                m.d.sync += self.code.eq(ErrorCode.SPAD_RANGE)
            with m.Elif(dram_over.any() | param_over):
                m.d.sync += self.code.eq(ErrorCode.DRAM_RANGE)
            with m.Else():
                m.d.sync += self.fail.eq(0)
        return m
