"""The STORE instruction's checks, as a five-stage pipeline of short register-to-register steps.

Every check of a STORE (``docs/isa.md``: shape, mode and ``param_src``, then the accumulator
and parameter-slot ranges, then the destination and the parameter table against the memory
limit) is a sum, product or quotient
of the instruction's fields followed by a compare. Done in one or two cycles these chained a
divider (``ceil(cols / C)`` when C is not a power of two), two DSP products, three adders and
the compares; here every stage holds at most one product or one carry chain:

1. the shape flags (``param_src`` unassigned, and the table's alignment unless it comes from
   the slots, among them), ``rows - 1``, ``cols - 1``, the row's bytes, ``acc_addr + rows``,
   the table's end, the slots' end (``param_slot + cols``) and a copy of ``mem_limit`` (a
   multiplexer in the CSR block);
2. the stride flags (``dram_stride`` below, or equal to, the row's bytes), ``(cols - 1) // C``
   (a shift, or a product by a reciprocal constant that is exact for every 16-bit ``cols``),
   the two 16-bit halves of ``(rows - 1) * dram_stride``, the first row's end and the slots'
   compare;
3. ``(n_tiles - 1) * acc_n_step``, the destination's span, the room left after the first row
   (``mem_limit - dram_addr - row bytes``) and in the accumulator, the table's compare (not
   for a table from the slots) and whether the rows are back to back;
4. each span against its room, and the STORE's bytes (span plus a row);
5. the error code of the documented order, and ``contiguous`` / ``run_bytes``.

``done`` rises five cycles after ``start`` (the first cycle the instruction word is valid) and
``fail`` / ``code`` / ``last_nt`` / ``last_row`` / ``contiguous`` / ``run_bytes`` hold until the
next ``start``; the word must not change in between.

Tested through the store unit by the accelerator tests (every error code and its order,
against :mod:`octet.sim.isa_sim`) and by ``tests/test_store_checks.py`` (random fields against
a Python transcription of the golden model's checks, Amaranth simulator).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from octet.isa import LAYOUTS, PARAM_RECORD_BYTES, ErrorCode, Opcode, ParamSource, StoreMode

from .const_div import floor_div_const, reciprocal

__all__ = ["StoreChecks", "reciprocal"]

STAGES = 5


class StoreChecks(wiring.Component):
    """Pipelined checks of one STORE instruction.

    Parameters
    ----------
    cols : int
        The array's columns (channels of one n-tile).
    acc_rows : int
        Rows of the accumulator.
    param_slots : int
        Parameter slots (``param_src`` KEEP / SLOTS must stay below this many).

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
    contiguous : Out(1)
        The STORE's bytes are one range of fewer than 2**16 bytes (one row, or rows of one
        n-tile back to back): it can be one write run (when the checks pass).
    run_bytes : Out(16)
        Bytes of that range (when ``contiguous``).
    """

    def __init__(self, cols, acc_rows, param_slots=0):
        for name, value in (("cols", cols), ("acc_rows", acc_rows)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"StoreChecks {name} must be a positive integer, not {value!r}")
        if not isinstance(param_slots, int) or isinstance(param_slots, bool) or param_slots < 0:
            raise TypeError(f"StoreChecks param_slots must be a non-negative integer, not "
                            f"{param_slots!r}")
        self._cols = cols
        self._acc_rows = acc_rows
        self._param_slots = param_slots
        super().__init__({
            "word": In(LAYOUTS[Opcode.STORE]), "mem_limit": In(33), "start": In(1),
            "done": Out(1), "fail": Out(1), "code": Out(ErrorCode), "last_nt": Out(12),
            "last_row": Out(16), "contiguous": Out(1), "run_bytes": Out(16),
        })

    @property
    def cols(self):
        return self._cols

    @property
    def acc_rows(self):
        return self._acc_rows

    @property
    def param_slots(self):
        return self._param_slots

    def elaborate(self, platform):
        m = Module()
        C = self._cols
        ins = self.word
        int8 = ins.mode == StoreMode.INT8
        # The records come from device memory (MEMORY, KEEP) / are kept in slots (KEEP, SLOTS).
        from_memory = int8 & (ins.param_src != ParamSource.SLOTS)
        uses_slots = int8 & ((ins.param_src == ParamSource.KEEP) |
                             (ins.param_src == ParamSource.SLOTS))
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
        param_mem = Signal()              # the table is read from device memory
        slot_end = Signal(17)             # param_slot + cols, when the slots are used
        limit = Signal(33)
        n_tile_limit = min(self._acc_rows, 4095)
        m.d.sync += [
            # ceil(cols / C) > limit  <=>  cols > limit * C.
            bad_shape.eq((ins.rows == 0) | (ins.cols == 0) | (ins.mode.as_value() > 1) |
                         (ins.cols > n_tile_limit * C) |
                         (ins.param_src.as_value() > ParamSource.SLOTS.value) |
                         (from_memory & (ins.param_addr[:4] != 0))),
            rows_m1.eq(ins.rows - 1),
            cols_m1.eq(ins.cols - 1),
            row_bytes.eq(Mux(int8, ins.cols, ins.cols << 2)),
            acc_first.eq(ins.acc_addr + ins.rows),
            param_end.eq(ins.param_addr + ins.cols * PARAM_RECORD_BYTES),
            param_mem.eq(from_memory),
            slot_end.eq(Mux(uses_slots, ins.param_slot + ins.cols, 0)),
            limit.eq(self.mem_limit),
        ]
        m.d.comb += self.last_row.eq(rows_m1)

        # 2.
        bad_stride = Signal()
        packed = Signal()                 # one row, or rows back to back
        slot_over = Signal()
        last_nt = Signal(12)
        prod_lo = Signal(32)
        prod_hi = Signal(32)
        dram_first = Signal(33)
        quotient = floor_div_const(cols_m1, C, 16)
        m.d.sync += [
            # rows > 1 (rows == 0 is bad_shape's).
            bad_stride.eq((rows_m1 != 0) & (ins.dram_stride < row_bytes)),
            packed.eq((rows_m1 == 0) | (ins.dram_stride == row_bytes)),
            slot_over.eq(slot_end > self._param_slots),
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
        slots_over = Signal()
        back_to_back = Signal()           # one row, or rows of one n-tile back to back
        m.d.sync += [
            malformed.eq(bad_shape | bad_stride),
            acc_span.eq(last_nt * ins.acc_n_step),
            dram_span.eq(prod_lo + (prod_hi << 16)),
            # acc_addr + span + rows > acc_rows  <=>  span > acc_rows - acc_addr - rows.
            acc_room.eq(self._acc_rows - acc_first),
            dram_room.eq(limit - dram_first),
            param_over.eq(param_mem & (param_end > limit)),
            slots_over.eq(slot_over),
            back_to_back.eq(packed & ((rows_m1 == 0) | (last_nt == 0))),
        ]

        # 4. A negative room is over, so is a span with bits above the room's width; the
        # compare of the rest is kept apart (a carry chain of its own).
        spad_over = Signal(3)
        dram_over = Signal(2)
        total = Signal(49)                # the STORE's bytes: span plus a row
        contiguous = Signal()
        aw, dw = len(acc_room) - 1, len(dram_room) - 1
        m.d.sync += [spad_over.eq(Cat(acc_room[-1] | acc_span[aw:].any(),
                                      acc_span[:aw] > acc_room[:aw], slots_over)),
                     dram_over.eq(Cat(dram_room[-1] | dram_span[dw:].any(),
                                      dram_span[:dw] > dram_room[:dw])),
                     total.eq(dram_span + row_bytes),
                     contiguous.eq(back_to_back)]

        # 5.
        with m.If(valid[-2]):
            m.d.sync += [self.fail.eq(1),
                         self.contiguous.eq(contiguous & (total[16:] == 0)),
                         self.run_bytes.eq(total[:16])]
            with m.If(malformed):
                m.d.sync += self.code.eq(ErrorCode.MALFORMED)
            with m.Elif(spad_over.any()):
                m.d.sync += self.code.eq(ErrorCode.SPAD_RANGE)
            with m.Elif(dram_over.any() | param_over):
                m.d.sync += self.code.eq(ErrorCode.DRAM_RANGE)
            with m.Else():
                m.d.sync += self.fail.eq(0)
        return m
