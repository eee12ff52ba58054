"""KV-cache controller: paged K/V address translation in front of the load or store unit.

It sits between the fetch unit's queue and one unit. Instructions of that unit pass through
(into a registered stage in front of the unit, at full rate); a KV instruction (KV_LOAD in
front of the load unit, KV_APPEND in front of the store unit) is taken by the controller,
which

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

from .serial_multiplier import SerialMultiplier
from .skid_buffer import SkidBuffer
from .staged_compare import chunked_greater
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
        # Another unit's halt is acted on a cycle late (halt_q), so that the accelerator's
        # error OR does not run on into this controller's state; only the output stage's
        # handshake with the unit stops at once (stop_now), so nothing more reaches the unit.
        halt_q = Signal()
        m.d.sync += halt_q.eq(self.halt)
        stop = halt_q | halted
        stop_now = self.halt | halted

        # Per instruction, computed a step at a time (a shift, an add or a compare per cycle).
        bad_static, bad_seq, bad_pool = Signal(), Signal(), Signal()
        pool_end = Signal(13)
        sh_area = Signal(6)               # log2 of one pool's bytes
        sh_page = Signal(5)               # log2 of one page's bytes
        pools_p = Signal(43)              # pools * pool_pages
        area_off = Signal(80)
        area_end = Signal(80)
        desc = Signal(34)
        desc_end = Signal(35)
        pool_step = Signal(64)
        pool_sh = Signal(44)              # pool * pool_pages
        page_mask = Signal(32)            # block-table entries must be below pool_pages
        page_tokens = Signal(17)
        pos_slot = Signal(16)             # pos mod page_tokens
        last_pos = Signal(17)
        end_pos = Signal(17)
        heads_m1 = Signal(8)
        whole_rows = Signal()             # whole rows packed back to back on both sides
        table_addr = Signal(32)
        pages = Signal(32)
        pages_end = Signal(48)            # pages * page_tokens
        bad_desc = Signal()
        first_page = Signal(17)
        last_page = Signal(17)
        n_pages = Signal(18)
        n_pages_one = Signal()
        lo = Signal(34)                   # first block-table entry to read
        hi = Signal(35)
        left = Signal(18)                 # table words still to check
        tokens_left = Signal(17)
        # Per page segment and head.
        room = Signal(17)                 # tokens from the segment's first slot to its page end
        seg_len = Signal(16)
        first_seg, last_seg = Signal(), Signal()
        head = Signal(8)
        dram = Signal(32)
        spad_seg = Signal(16)
        spad = Signal(16)
        param = Signal(32)
        param_slot = Signal(16)           # KV_APPEND: the head's first parameter slot
        page_index = Signal(44)           # pool * pool_pages + physical page
        page_off = Signal(32)
        slot_offset = Signal(32)
        base_off = Signal(32)
        seg_bytes_full = Signal(32)
        # seg_len * spad_stride, the scratchpad advance of a KV_LOAD segment.
        m.submodules.advance = advance = SerialMultiplier(16, 16, 16)

        def fail(code):
            m.d.sync += [pending.eq(code), want.eq(0)]
            m.next = "REPORT"

        # Each check state registers its verdict (chk_bad, chk_code); the state after it acts
        # on that flip-flop, so no state decides on a compare or a bus word in the same cycle.
        chk_bad = Signal()
        chk_code = Signal(ErrorCode)

        def verdict(*checks):
            """Register the first failing ``(condition, code)`` of ``checks``."""
            code = 0
            for cond, c in reversed(checks):
                code = Mux(cond, c, code)
            bad = 0
            for cond, _ in checks:
                bad = bad | cond
            m.d.sync += [chk_bad.eq(bad), chk_code.eq(code)]

        # Words of DESC and VALIDATE are checked a cycle after they are taken (took_*), and
        # the first bad one is kept (word_bad, word_code) until the state after the last word.
        took, took_err, took_page = Signal(), Signal(), Signal()
        validating = Signal()
        word_bad = Signal()
        word_code = Signal(ErrorCode)
        m.d.sync += [took.eq(reader.o_word.valid & reader.o_word.ready),
                     took_err.eq(reader.o_word.payload.error),
                     took_page.eq(validating &
                                  ((reader.o_word.payload.word & page_mask) != 0))]
        with m.If(took & ~word_bad & (took_err | took_page)):
            m.d.sync += [word_bad.eq(1),
                         word_code.eq(Mux(took_err, ErrorCode.BUS_ERROR, ErrorCode.KV_PAGE))]
        left_one = Signal()               # left == 1, kept as a flag
        # The word reader's start, registered (its run begins the cycle after the state).
        rd_start = Signal()
        rd_addr = Signal(32)
        rd_count = Signal(18)
        m.d.sync += rd_start.eq(0)
        m.d.comb += [reader.start.eq(rd_start), reader.addr.eq(rd_addr),
                     reader.count.eq(rd_count)]

        def read(addr, count, count_is_one):
            m.d.sync += [rd_start.eq(1), rd_addr.eq(addr), rd_count.eq(count),
                         left.eq(count), left_one.eq(count_is_one), want.eq(1)]

        def took_word():
            m.d.sync += [left.eq(left - 1), left_one.eq(left == 2)]
            with m.If(left_one):
                m.d.sync += want.eq(0)

        # The reader's o_word.ready and flush come from flip-flops: ``want`` is set when the
        # FSM enters a state that takes words (DESC, VALIDATE, SEGMENT) and cleared as it
        # leaves; ``flush`` is a cycle late (a word offered meanwhile is not taken).
        want = Signal()
        flush = Signal()
        flush_q = Signal()
        m.d.sync += flush_q.eq(flush)
        m.d.comb += [reader.o_word.ready.eq(want), reader.flush.eq(flush_q)]

        # Wide compares, valid two cycles after their operands (the *_COMPARE states wait).
        bad_area = chunked_greater(m, area_end, self.mem_limit, "area")
        bad_desc_end = chunked_greater(m, desc_end, self.mem_limit, "desc")
        bad_range = chunked_greater(m, end_pos, pages_end, "range")
        bad_table = chunked_greater(m, hi, self.mem_limit, "table")

        # Instructions for the unit pass a registered stage, so that the unit's ready logic
        # ends there (o_instr below is the stage's input; its output stops on halt).
        m.submodules.out_stage = stage = SkidBuffer(self.o_instr.payload.shape())
        m.d.comb += [self.o_instr.valid.eq(stage.o_stream.valid & ~stop_now),
                     self.o_instr.payload.eq(stage.o_stream.payload),
                     stage.o_stream.ready.eq(self.o_instr.ready & ~stop_now)]
        o_instr = stage.i_stream
        out = Signal(256)
        m.d.comb += [o_instr.payload.word.eq(out), o_instr.payload.pc.eq(pc)]
        # 1 << log2_row_pitch, registered (the KV registers do not change while a program
        # runs).
        pitch = Signal(17)
        m.d.sync += pitch.eq(1 << lpitch)
        last_head = Signal()              # head == heads_m1, kept as a flag
        head_zero = Signal()              # head == 0, kept as a flag
        heads_m2 = Signal(9)
        first = first_seg & head_zero
        last = last_seg & last_head
        whole = Signal()
        seg_bytes = Signal(16)
        self._sub_instruction(m, out, kv, first & pop, last & push, seg_len, dram, spad,
                              param, pitch, whole, seg_bytes, param_slot)

        # One-hot flags for the two states that drive the stage's input, kept in flip-flops
        # beside the FSM (set on the transitions into the state, cleared on those out of it):
        # the pass-through and hand-over handshakes, and the enables of the registers they
        # advance, then do not wait for the decode of the FSM's state.
        in_idle = Signal(init=1)
        in_hand = Signal()
        is_kv = self.i_instr.payload.word[:4] == self._op
        pass_valid = in_idle & ~is_kv & self.i_instr.valid & ~stop
        hand_valid = Signal()
        m.d.comb += hand_valid.eq(in_hand & ~stop & ~(last_head & advance.busy))
        hand_fire = hand_valid & o_instr.ready
        m.d.comb += [
            o_instr.valid.eq(pass_valid | hand_valid),
            self.i_instr.ready.eq(in_idle & ~stop & (is_kv | o_instr.ready)),
        ]
        with m.If(in_idle):
            m.d.comb += [out.eq(self.i_instr.payload.word),
                         o_instr.payload.pc.eq(self.i_instr.payload.pc)]
            # The instruction register follows the queue while idle (it matters only once
            # a KV instruction is taken), so its enables come from a flip-flop.
            m.d.sync += [word.eq(self.i_instr.payload.word), pc.eq(self.i_instr.payload.pc)]

        can = Signal()                    # REPORT may report (two cycles late)
        m.d.sync += can.eq(0)
        unit_busy_q, stage_busy_q, token_q = Signal(), Signal(), Signal()
        m.d.sync += [unit_busy_q.eq(self.unit_busy), stage_busy_q.eq(stage.busy),
                     token_q.eq(self.token_available)]
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(is_kv & self.i_instr.valid & ~stop):
                    m.d.sync += in_idle.eq(0)
                    m.next = "CHECK"
            with m.State("CHECK"):
                width = kv.row_bytes if load else kv.cols
                static = ((kv.count == 0) | (kv.heads == 0) | (width == 0) |
                          (width > pitch))
                if load:
                    static |= kv.target.as_value() > 1
                    lanes = Mux(kv.target.as_value() == 1, kv.spad_stride * self._cfg.cols,
                                kv.spad_stride * self._cfg.rows)
                    m.d.sync += whole_rows.eq((kv.row_bytes == pitch) & (lanes == pitch))
                m.d.sync += [
                    bad_static.eq(static), bad_seq.eq(kv.seq >= self.seq_count),
                    pool_end.eq(kv.pool + kv.heads),
                    sh_area.eq(lpp + lpt + lpitch), sh_page.eq(lpt + lpitch),
                    desc.eq((self.seq_table & ~7) + DESCRIPTOR_BYTES * kv.seq),
                    pool_sh.eq(kv.pool << lpp), pools_p.eq(g.pools << lpp), page_mask.eq(~((1 << lpp) - 1)),
                    page_tokens.eq(1 << lpt), pos_slot.eq(kv.pos & ((1 << lpt) - 1)),
                    last_pos.eq(kv.pos + kv.count - 1), end_pos.eq(kv.pos + kv.count),
                    heads_m1.eq(kv.heads - 1), heads_m2.eq(kv.heads - 2),
                    word_bad.eq(0), validating.eq(0), want.eq(0),
                ]
                m.next = "VERDICT"
            with m.State("VERDICT"):
                # pools << sh_area in two shifts (lpp in CHECK, lpt + lpitch here).
                m.d.sync += [area_off.eq(pools_p << sh_page), pool_step.eq(1 << sh_area),
                             desc_end.eq(desc + DESCRIPTOR_BYTES)]
                m.d.sync += bad_pool.eq(pool_end > g.pools)
                m.next = "POOL"
            with m.State("POOL"):
                verdict((bad_static, ErrorCode.MALFORMED), (bad_seq, ErrorCode.KV_SEQUENCE),
                        (bad_pool, ErrorCode.KV_PAGE))
                m.next = "AREA_SUM"
            with m.State("AREA_SUM"):
                m.d.sync += area_end.eq(self.pool_base + area_off)
                with m.If(chk_bad):
                    fail(chk_code)
                with m.Else():
                    m.next = "AREA_COMPARE"
            with m.State("AREA_COMPARE"):
                m.next = "AREA_COMPARE2"
            with m.State("AREA_COMPARE2"):
                m.next = "AREA"
            with m.State("AREA"):
                verdict((bad_area | bad_desc_end, ErrorCode.DRAM_RANGE))
                m.next = "AREA_VERDICT"
            with m.State("AREA_VERDICT"):
                with m.If(chk_bad):
                    fail(chk_code)
                with m.Else():
                    read(desc, 2, 0)
                    m.next = "DESC"
            with m.State("DESC"):
                # A bus error is reported at RANGE_CHECK (word_bad), before the other checks.
                with m.If(reader.o_word.valid):
                    took_word()
                    m.d.sync += [table_addr.eq(pages), pages.eq(reader.o_word.payload.word)]
                    with m.If(left_one):
                        m.next = "RANGE"
            with m.State("RANGE"):
                m.d.sync += [bad_desc.eq((pages == 0) | (table_addr[:2] != 0)),
                             pages_end.eq(pages << lpt),
                             first_page.eq(kv.pos >> lpt), last_page.eq(last_pos >> lpt)]
                m.next = "RANGE_COMPARE"
            with m.State("RANGE_COMPARE"):
                m.d.sync += [n_pages.eq(last_page - first_page + 1),
                             lo.eq(table_addr + ENTRY_BYTES * first_page)]
                m.next = "RANGE_COMPARE2"
            with m.State("RANGE_COMPARE2"):
                m.next = "RANGE_CHECK"
            with m.State("RANGE_CHECK"):
                verdict((word_bad, word_code), (bad_desc, ErrorCode.KV_SEQUENCE),
                        (bad_range, ErrorCode.KV_RANGE))
                m.next = "TABLE_END"
            with m.State("TABLE_END"):
                m.d.sync += [hi.eq(lo + ENTRY_BYTES * n_pages), n_pages_one.eq(n_pages == 1)]
                with m.If(chk_bad):
                    fail(chk_code)
                with m.Else():
                    m.next = "TABLE_COMPARE"
            with m.State("TABLE_COMPARE"):
                m.next = "TABLE_COMPARE2"
            with m.State("TABLE_COMPARE2"):
                m.next = "TABLE"
            with m.State("TABLE"):
                verdict((bad_table, ErrorCode.DRAM_RANGE))
                m.next = "TABLE_VERDICT"
            with m.State("TABLE_VERDICT"):
                with m.If(chk_bad):
                    fail(chk_code)
                with m.Else():
                    read(lo, n_pages, n_pages_one)
                    m.d.sync += validating.eq(1)
                    m.next = "VALIDATE"
            with m.State("VALIDATE"):
                with m.If(reader.o_word.valid):
                    took_word()
                    with m.If(left_one):
                        m.next = "VALIDATE_LAST"
            with m.State("VALIDATE_LAST"):
                # The last word's flags (took_*) are in; word_bad is final a cycle later.
                m.next = "VALIDATE_VERDICT"
            with m.State("VALIDATE_VERDICT"):
                m.d.sync += validating.eq(0)
                with m.If(word_bad):
                    fail(word_code)
                with m.Else():
                    m.next = "REREAD"
            with m.State("REREAD"):
                read(lo, n_pages, n_pages_one)
                m.d.sync += [first_seg.eq(1), room.eq(page_tokens - pos_slot),
                             slot_offset.eq(pos_slot << lpitch), tokens_left.eq(kv.count),
                             spad_seg.eq(kv.spad_addr if load else kv.acc_addr)]
                m.next = "SEGMENT"
            with m.State("SEGMENT"):
                with m.If(reader.o_word.valid):
                    m.d.sync += [
                        head.eq(0), head_zero.eq(1), last_head.eq(heads_m1 == 0), want.eq(0),
                        seg_len.eq(Mux(tokens_left < room, tokens_left, room)),
                        last_seg.eq(tokens_left <= room),
                        page_index.eq(pool_sh | reader.o_word.payload.word),
                        base_off.eq(self.pool_base + slot_offset),
                        spad.eq(spad_seg),
                        param.eq(0 if load else kv.param_addr),
                        param_slot.eq(0 if load else kv.param_slot),
                    ]
                    m.next = "ADDRESS"
            with m.State("ADDRESS"):
                m.d.sync += [page_off.eq(page_index << sh_page),
                             seg_bytes_full.eq(seg_len << lpitch)]
                if load:
                    m.d.comb += [advance.start.eq(1), advance.a.eq(kv.spad_stride),
                                 advance.b.eq(seg_len)]
                m.next = "ADDRESS_SUM"
            with m.State("ADDRESS_SUM"):
                m.d.sync += [dram.eq(base_off + page_off), seg_bytes.eq(seg_bytes_full),
                             whole.eq(whole_rows & (seg_bytes_full < (1 << 16))),
                             in_hand.eq(1)]
                m.next = "HAND"
            with m.State("HAND"):
                # (The hand-over's register updates are below, outside the FSM: hand_fire
                # implies this state.)
                with m.If(hand_fire & last_head):
                    with m.If(last_seg):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "SEGMENT"
                with m.If(stop):
                    m.d.sync += in_hand.eq(0)
                    m.next = "HALT"
            with m.State("REPORT"):
                # Report once everything before this instruction has finished (registered:
                # once true it stays true, as the unit is idle and gets no more work).
                m.d.comb += flush.eq(1)
                # (From registered inputs: no more work reaches the unit in REPORT.)
                m.d.sync += can.eq(~unit_busy_q & ~stage_busy_q & ~stage.busy &
                                   (~pop | token_q))
                m.d.comb += self.waiting.eq(~self.unit_busy & pop & ~self.token_available &
                                            ~reader.busy & ~stage.busy)
                with m.If(halt_q):
                    m.next = "HALT"
                with m.Elif(can):
                    m.d.sync += [halted.eq(1), err_code.eq(pending), self.error.pc.eq(pc)]
                    m.next = "HALT"
            with m.State("HALT"):
                m.d.comb += flush.eq(1)
        # HAND: one sub-instruction per head; the last head's hand-over also advances the
        # scratchpad (hand_valid waits for the product).
        with m.If(hand_fire):
            m.d.sync += [head.eq(head + 1), head_zero.eq(0),
                         last_head.eq(head == heads_m2), dram.eq(dram + pool_step),
                         spad.eq(spad + (kv.spad_head_step if load else kv.acc_head_step)),
                         param.eq(param + (0 if load else kv.param_head_step)),
                         param_slot.eq(param_slot + (0 if load else kv.param_head_step[4:]))]
            with m.If(last_head):
                m.d.sync += [in_hand.eq(0), first_seg.eq(0), slot_offset.eq(0),
                             room.eq(page_tokens), tokens_left.eq(tokens_left - seg_len),
                             spad_seg.eq(spad_seg + (advance.product if load else seg_len))]
                with m.If(last_seg):
                    m.d.sync += in_idle.eq(1)
                with m.Else():
                    m.d.sync += want.eq(1)
        with m.If(stop & ~fsm.ongoing("REPORT")):
            m.d.comb += flush.eq(1)

        m.d.comb += [
            self.busy.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("HALT") | reader.busy |
                         stage.busy),
            self.blocked.eq((in_hand & ~o_instr.ready) | stage.busy |
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
