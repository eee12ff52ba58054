"""KV-cache controller: paged K/V address translation in front of the load or store unit.

It sits between the fetch unit's queue and one unit. Instructions of that unit pass straight
through (combinationally); a KV instruction (KV_LOAD in front of the load unit, KV_APPEND in
front of the store unit) is taken by the controller, which

1. checks its fields and the KV registers (MALFORMED, KV_SEQUENCE, KV_PAGE, DRAM_RANGE for a
   KV area beyond MEM_LIMIT),
2. reads the sequence's descriptor (KV_SEQUENCE for a free slot, KV_RANGE for positions beyond
   its pages),
3. reads the block-table entries the positions cover and checks each (KV_PAGE), and only then
4. reads them again and hands the unit one LOAD (or int8 STORE) per page segment and head,
   with the translated device address: the unit moves the data as for any LOAD or STORE
   (a segment of whole, back-to-back rows as a single LOAD row: one burst per page).

A failing KV instruction hands nothing over; it reports its error once the unit has finished
everything before it (and the token it would pop is there), as the golden model
(:mod:`octet.sim.isa_kv`, the reference for all of the above) does. Descriptor and table words
come through a :class:`~.word_reader.WordReader`, so the shared read channel never waits for
the controller. Tested by ``tests/test_kv_rtl.py`` (cocotb + Verilator against the golden
simulator).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import LAYOUTS, ErrorCode, Opcode, StoreMode
from octet.kv_format import DESCRIPTOR_BYTES, ENTRY_BYTES, GEOMETRY

from .unit_ports import BusRequest, ErrorReport, InstructionStream
from .word_reader import WordReader

__all__ = ["KvController"]


class KvController(wiring.Component):
    """Translates KV_LOAD (``opcode=Opcode.KV_LOAD``) or KV_APPEND into LOADs or STOREs.

    Parameters
    ----------
    config : AcceleratorConfig
    opcode : Opcode
        ``Opcode.KV_LOAD`` (in front of the load unit) or ``Opcode.KV_APPEND`` (store unit).

    Ports
    -----
    i_instr : In(InstructionStream())
        The unit's queue.
    o_instr : Out(InstructionStream())
        To the unit.
    seq_table, seq_count, pool_base : In(32)
        The KV_SEQ_TABLE, KV_SEQ_COUNT and KV_POOL_BASE registers.
    geometry : In(octet.kv_format.GEOMETRY)
    mem_limit : In(33)
    halt : In(1)
        Another unit failed: hand nothing more over.
    unit_busy : In(1)
        The unit is executing or waiting.
    token_available : In(1)
        The token a KV instruction's pop flag names is queued.
    o_req : Out(BusRequest()), i_data : In(stream {data, error})
        Descriptor and block-table reads.
    error : Out(ErrorReport())
    busy : Out(1)
        Working on a KV instruction or reads in flight.
    waiting : Out(1)
        A checked-bad instruction waits for its token (for deadlock detection).
    blocked : Out(1)
        Waiting for the unit to take an instruction, or waiting to report an error.
    pc : Out(32)
    """

    def __init__(self, config, opcode):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"KvController config must be an AcceleratorConfig, not {config!r}")
        if opcode not in (Opcode.KV_LOAD, Opcode.KV_APPEND):
            raise ValueError(f"KvController opcode must be KV_LOAD or KV_APPEND, not {opcode!r}")
        self._cfg = config
        self._op = opcode
        B = config.bus_bytes
        super().__init__({
            "i_instr": In(InstructionStream()), "o_instr": Out(InstructionStream()),
            "seq_table": In(32), "seq_count": In(32), "pool_base": In(32),
            "geometry": In(GEOMETRY), "mem_limit": In(33), "halt": In(1),
            "unit_busy": In(1), "token_available": In(1),
            "o_req": Out(BusRequest()),
            "i_data": In(stream.Signature(data.StructLayout({"data": 8 * B, "error": 1}))),
            "error": Out(ErrorReport()), "busy": Out(1), "waiting": Out(1),
            "blocked": Out(1), "pc": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        load = self._op is Opcode.KV_LOAD
        m.submodules.reader = reader = WordReader(self._cfg.bus_bytes)
        wiring.connect(m, reader.o_req, wiring.flipped(self.o_req))
        wiring.connect(m, wiring.flipped(self.i_data), reader.i_data)

        word = Signal(256)
        kv = LAYOUTS[self._op](word)
        pc = self.pc
        g = self.geometry
        lpt, lpitch, lpp = g.log2_page_tokens, g.log2_row_pitch, g.log2_pool_pages
        pop = word[5] if load else word[4]          # pop_next / pop_prev
        push = word[7] if load else word[6]         # push_next / push_prev

        halted = Signal()
        err_code = Signal(ErrorCode)
        pending = Signal(ErrorCode)
        m.d.comb += [self.error.valid.eq(halted), self.error.code.eq(err_code)]
        stop = self.halt | halted

        # Per instruction.
        area_end = Signal(80)
        table_addr = Signal(32)
        pages = Signal(32)
        first_page = Signal(17)
        n_pages = Signal(18)
        left = Signal(18)                 # table words still to check / tokens to hand over
        tokens_left = Signal(17)
        # Per page segment and head.
        slot = Signal(16)
        seg_len = Signal(16)
        done = Signal(17)
        head = Signal(8)
        dram = Signal(32)
        spad_seg = Signal(16)
        spad = Signal(16)
        param = Signal(32)
        param_slot = Signal(16)           # KV_APPEND: the head's first parameter slot
        pool_step = Signal(64)
        page_index = Signal(44)           # pool * pool_pages + physical page
        slot_offset = Signal(32)
        last_pos = Signal(17)
        m.d.comb += last_pos.eq(kv.pos + kv.count - 1)

        def fail(code):
            m.d.sync += pending.eq(code)
            m.next = "REPORT"

        out = Signal(256)
        m.d.comb += [self.o_instr.payload.word.eq(out), self.o_instr.payload.pc.eq(pc)]
        first = (done == 0) & (head == 0)
        last = (done + seg_len == kv.count) & (head == kv.heads - 1)
        # KV_LOAD of whole rows packed back to back on both sides: a segment is one LOAD row.
        whole = Signal()
        seg_bytes = Signal(16)
        self._sub_instruction(m, out, kv, first & pop, last & push, seg_len, dram, spad,
                              param, 1 << lpitch, whole, seg_bytes, param_slot)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                is_kv = self.i_instr.payload.word[:4] == self._op
                with m.If(is_kv):
                    m.d.comb += self.i_instr.ready.eq(~stop)
                    with m.If(self.i_instr.valid & ~stop):
                        m.d.sync += [word.eq(self.i_instr.payload.word),
                                     pc.eq(self.i_instr.payload.pc)]
                        m.next = "CHECK"
                with m.Else():
                    m.d.comb += [self.o_instr.valid.eq(self.i_instr.valid & ~stop),
                                 out.eq(self.i_instr.payload.word),
                                 self.o_instr.payload.pc.eq(self.i_instr.payload.pc),
                                 self.i_instr.ready.eq(self.o_instr.ready & ~stop)]
            with m.State("CHECK"):
                m.d.sync += [area_end.eq(self.pool_base + (g.pools << (lpp + lpt + lpitch))),
                             pool_step.eq(1 << (lpp + lpt + lpitch))]
                width = kv.row_bytes if load else kv.cols
                static = ((kv.count == 0) | (kv.heads == 0) | (width == 0) |
                          (width > (1 << lpitch)))
                if load:
                    static |= kv.target.as_value() > 1
                with m.If(static):
                    fail(ErrorCode.MALFORMED)
                with m.Elif(kv.seq >= self.seq_count):
                    fail(ErrorCode.KV_SEQUENCE)
                with m.Elif(kv.pool + kv.heads > g.pools):
                    fail(ErrorCode.KV_PAGE)
                with m.Else():
                    m.next = "AREA"
            with m.State("AREA"):
                desc = Signal(34)
                m.d.comb += desc.eq((self.seq_table & ~7) + DESCRIPTOR_BYTES * kv.seq)
                with m.If(area_end > self.mem_limit):
                    fail(ErrorCode.DRAM_RANGE)
                with m.Elif(desc + DESCRIPTOR_BYTES > self.mem_limit):
                    fail(ErrorCode.DRAM_RANGE)
                with m.Else():
                    m.d.comb += [reader.start.eq(1), reader.addr.eq(desc), reader.count.eq(2)]
                    m.d.sync += left.eq(2)
                    m.next = "DESC"
            with m.State("DESC"):
                m.d.comb += reader.o_word.ready.eq(1)
                with m.If(reader.o_word.valid):
                    m.d.sync += [left.eq(left - 1), table_addr.eq(pages),
                                 pages.eq(reader.o_word.payload.word)]
                    with m.If(reader.o_word.payload.error):
                        fail(ErrorCode.BUS_ERROR)
                    with m.Elif(left == 1):
                        m.next = "RANGE"
            with m.State("RANGE"):
                m.d.sync += [first_page.eq(kv.pos >> lpt),
                             n_pages.eq((last_pos >> lpt) - (kv.pos >> lpt) + 1)]
                with m.If((pages == 0) | (table_addr[:2] != 0)):
                    fail(ErrorCode.KV_SEQUENCE)
                with m.Elif(kv.pos + kv.count > (pages << lpt)):
                    fail(ErrorCode.KV_RANGE)
                with m.Else():
                    m.next = "TABLE"
            with m.State("TABLE"):
                lo = table_addr + ENTRY_BYTES * first_page
                with m.If(lo + ENTRY_BYTES * n_pages > self.mem_limit):
                    fail(ErrorCode.DRAM_RANGE)
                with m.Else():
                    m.d.comb += [reader.start.eq(1), reader.addr.eq(lo),
                                 reader.count.eq(n_pages)]
                    m.d.sync += left.eq(n_pages)
                    m.next = "VALIDATE"
            with m.State("VALIDATE"):
                m.d.comb += reader.o_word.ready.eq(1)
                with m.If(reader.o_word.valid):
                    m.d.sync += left.eq(left - 1)
                    with m.If(reader.o_word.payload.error):
                        fail(ErrorCode.BUS_ERROR)
                    with m.Elif((reader.o_word.payload.word >> lpp) != 0):
                        fail(ErrorCode.KV_PAGE)
                    with m.Elif(left == 1):
                        m.next = "REREAD"
            with m.State("REREAD"):
                m.d.comb += [reader.start.eq(1),
                             reader.addr.eq(table_addr + ENTRY_BYTES * first_page),
                             reader.count.eq(n_pages)]
                m.d.sync += [done.eq(0), slot.eq(kv.pos & ((1 << lpt) - 1)),
                             tokens_left.eq(kv.count),
                             spad_seg.eq(kv.spad_addr if load else kv.acc_addr)]
                m.next = "SEGMENT"
            with m.State("SEGMENT"):
                room = (1 << lpt) - slot
                m.d.comb += reader.o_word.ready.eq(1)
                with m.If(reader.o_word.valid):
                    p = reader.o_word.payload.word
                    m.d.sync += [
                        head.eq(0),
                        seg_len.eq(Mux(tokens_left < room, tokens_left, room)),
                        page_index.eq((kv.pool << lpp) | p),
                        slot_offset.eq(slot << lpitch),
                        spad.eq(spad_seg),
                        param.eq(0 if load else kv.param_addr),
                        param_slot.eq(0 if load else kv.param_slot),
                    ]
                    m.next = "ADDRESS"
            with m.State("ADDRESS"):
                # A cycle of its own for the shifts and adds, and for the whole-rows test.
                m.d.sync += [dram.eq(self.pool_base + (page_index << (lpt + lpitch)) +
                                     slot_offset),
                             seg_bytes.eq(seg_len << lpitch)]
                if load:
                    width = Mux(kv.target.as_value() == 1, self._cfg.cols, self._cfg.rows)
                    m.d.sync += whole.eq((kv.row_bytes == (1 << lpitch)) &
                                         (kv.spad_stride * width == (1 << lpitch)) &
                                         ((seg_len << lpitch) < (1 << 16)))
                m.next = "HAND"
            with m.State("HAND"):
                m.d.comb += self.o_instr.valid.eq(~stop)
                with m.If(self.o_instr.valid & self.o_instr.ready):
                    m.d.sync += [head.eq(head + 1), dram.eq(dram + pool_step),
                                 spad.eq(spad + (kv.spad_head_step if load
                                                 else kv.acc_head_step)),
                                 param.eq(param + (0 if load else kv.param_head_step)),
                                 param_slot.eq(param_slot +
                                               (0 if load else kv.param_head_step[4:]))]
                    with m.If(head == kv.heads - 1):
                        m.d.sync += [done.eq(done + seg_len), slot.eq(0),
                                     tokens_left.eq(tokens_left - seg_len),
                                     spad_seg.eq(spad_seg + (seg_len * kv.spad_stride if load
                                                             else seg_len))]
                        with m.If(tokens_left == seg_len):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "SEGMENT"
                with m.If(stop):
                    m.next = "HALT"
            with m.State("REPORT"):
                # Report once everything before this instruction has finished.
                m.d.comb += reader.flush.eq(1)
                can = ~self.unit_busy & (~pop | self.token_available)
                m.d.comb += self.waiting.eq(~self.unit_busy & pop & ~self.token_available &
                                            ~reader.busy)
                with m.If(self.halt):
                    m.next = "HALT"
                with m.Elif(can):
                    m.d.sync += [halted.eq(1), err_code.eq(pending), self.error.pc.eq(pc)]
                    m.next = "HALT"
            with m.State("HALT"):
                m.d.comb += reader.flush.eq(1)
        with m.If(stop & ~fsm.ongoing("REPORT")):
            m.d.comb += reader.flush.eq(1)

        m.d.comb += [
            self.busy.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("HALT") | reader.busy),
            self.blocked.eq((fsm.ongoing("HAND") & ~self.o_instr.ready) |
                            fsm.ongoing("REPORT")),
        ]
        return m

    def _sub_instruction(self, m, out, kv, pop, push, rows, dram, spad, param, pitch, whole,
                         seg_bytes, param_slot):
        """Drive ``out`` with the LOAD / STORE for the current page segment and head."""
        if self._op is Opcode.KV_LOAD:
            ld = LAYOUTS[Opcode.LOAD](out)
            m.d.comb += [ld.header.opcode.eq(Opcode.LOAD), ld.header.pop_next.eq(pop),
                         ld.header.push_next.eq(push), ld.target.eq(kv.target),
                         ld.spad_addr.eq(spad), ld.spad_stride.eq(kv.spad_stride),
                         ld.rows.eq(Mux(whole, 1, rows)),
                         ld.row_bytes.eq(Mux(whole, seg_bytes, kv.row_bytes)),
                         ld.dram_addr.eq(dram), ld.dram_stride.eq(pitch)]
        else:
            st = LAYOUTS[Opcode.STORE](out)
            m.d.comb += [st.header.opcode.eq(Opcode.STORE), st.header.pop_prev.eq(pop),
                         st.header.push_prev.eq(push), st.mode.eq(StoreMode.INT8),
                         st.acc_addr.eq(spad), st.acc_n_step.eq(kv.acc_n_step),
                         st.rows.eq(rows), st.cols.eq(kv.cols), st.dram_addr.eq(dram),
                         st.dram_stride.eq(pitch), st.param_addr.eq(param),
                         st.zero_point.eq(kv.zero_point), st.relu.eq(0),
                         st.param_src.eq(kv.param_src), st.param_slot.eq(param_slot)]
