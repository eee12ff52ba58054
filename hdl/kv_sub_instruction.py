"""The sub-instructions of a KV instruction: one LOAD or STORE per page segment and head.

:class:`KvSubInstruction` is the datapath of the KV-cache controller's second phase
(:mod:`.kv_sequencer` is the state machine that steps it). Once the checks have passed, it
walks the positions page segment by page segment (a segment is the run of positions within
one physical page, whose number arrives as a block-table word) and, within a segment, head by
head (one pool per head). For each it drives the LOAD (KV_LOAD) or int8 STORE (KV_APPEND)
with the translated device address: ``pool_base + ((pool * pool_pages + page) * page_tokens
+ slot) * row_pitch``, computed a shift or an add per cycle, plus one pool's bytes per head. A
KV_LOAD segment of whole, back-to-back rows goes as a single LOAD row (one burst per page);
its scratchpad advance ``seg_len * spad_stride`` comes from a serial multiplier.

Tested through the controller by ``tests/test_kv_controller.py`` (the sub-instructions equal
the golden model's, :func:`octet.sim.isa_kv.expand`, Amaranth simulator) and
``tests/test_kv_rtl.py`` (cocotb + Verilator).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from octet.isa import LAYOUTS, Opcode, StoreMode
from octet.kv_format import GEOMETRY

from .serial_multiplier import SerialMultiplier

__all__ = ["KV_SUB_STEPS", "KvSubInstruction"]

#: The steps of :class:`KvSubInstruction`: one flag per controller state (or event) that
#: registers a stage, and the enables of the register groups that more than one step loads.
KV_SUB_STEPS = data.StructLayout({name: 1 for name in (
    "start", "segment", "address_sum", "hand",
    "load_head", "load_dram", "load_walk")})


class KvSubInstruction(wiring.Component):
    """Steps through the page segments and heads of a checked KV_LOAD or KV_APPEND.

    At most one of the first four ``step`` flags is set per cycle: ``start`` once (the
    controller's REREAD), then per segment ``segment`` (the block-table word taken the cycle
    before is on ``table_word``), ``address_sum`` the cycle after (``sub_instr`` is then
    complete) and ``hand`` once per head, the cycle after the controller handed ``sub_instr``
    over (the last head's also moves on to the next segment). The other three are the enables of the
    register groups that several steps load, set with them: ``load_head`` with ``segment`` or
    ``hand`` (the per-head registers), ``load_dram`` with ``address_sum`` or ``hand``, and
    ``load_walk`` with ``start`` or the last head's ``hand`` (the per-segment walk). Every flag
    must come straight from a flip-flop: they enable a hundred registers each, and the
    multiplexers in front of those registers select on ``segment``, ``address_sum`` and
    ``start``. Inputs from :class:`~.kv_checks.KvChecks` hold still meanwhile. The register
    outputs are named as before the walk had its own module (timing reports are searched by
    these names).

    Parameters
    ----------
    opcode : Opcode
        ``Opcode.KV_LOAD`` or ``Opcode.KV_APPEND``.

    Ports
    -----
    step : In(KV_SUB_STEPS)
        The stage to register this cycle (flip-flops in the controller).
    word : In(256)
        The KV instruction word.
    geometry : In(octet.kv_format.GEOMETRY)
    pool_base : In(32)
        The KV_POOL_BASE register.
    table_word : In(32)
        The segment's block-table entry (its physical page), with ``segment`` (registered).
    pitch, page_tokens, pos_slot, pool_sh, sh_page, pool_step, heads_m1, heads_m2, whole_rows
        From :class:`~.kv_checks.KvChecks`.
    sub_instr : Out(256)
        The LOAD or STORE word of the current segment and head (combinational).
    last_head : Out(1)
        The current head is the last.
    last_seg : Out(1)
        The current segment is the last.
    advance_busy : Out(1)
        KV_LOAD: the segment's scratchpad advance is still being multiplied (the last head's
        hand-over waits for it).
    """

    def __init__(self, opcode):
        if opcode not in (Opcode.KV_LOAD, Opcode.KV_APPEND):
            raise ValueError(f"KvSubInstruction opcode must be KV_LOAD or KV_APPEND, "
                             f"not {opcode!r}")
        self._op = opcode
        super().__init__({
            "step": In(KV_SUB_STEPS), "word": In(256), "geometry": In(GEOMETRY),
            "pool_base": In(32), "table_word": In(32),
            "pitch": In(17), "page_tokens": In(17), "pos_slot": In(16), "pool_sh": In(44),
            "sh_page": In(5), "pool_step": In(64), "heads_m1": In(8), "heads_m2": In(9),
            "whole_rows": In(1),
            "sub_instr": Out(256), "last_head": Out(1), "last_seg": Out(1),
            "advance_busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        load = self._op is Opcode.KV_LOAD
        kv = LAYOUTS[self._op](self.word)
        step = self.step
        lpitch = self.geometry.log2_row_pitch
        pop = self.word[5] if load else self.word[4]        # pop_next / pop_prev
        push = self.word[7] if load else self.word[6]       # push_next / push_prev
        page_tokens, pos_slot, heads_m1 = self.page_tokens, self.pos_slot, self.heads_m1

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
        page_off = Signal(32)
        slot_offset = Signal(32)
        base_off = Signal(32)
        # seg_len * spad_stride, the scratchpad advance of a KV_LOAD segment.
        m.submodules.advance = advance = SerialMultiplier(16, 16, 16)
        m.d.comb += self.advance_busy.eq(advance.busy)

        last_head = Signal()              # head == heads_m1, kept as a flag
        m.d.comb += [self.last_head.eq(last_head), self.last_seg.eq(last_seg)]
        head_zero = Signal()              # head == 0, kept as a flag
        first = first_seg & head_zero
        last = last_seg & last_head
        whole = Signal()
        seg_bytes = Signal(16)
        self._sub_instruction(m, self.sub_instr, kv, first & pop, last & push, seg_len, dram,
                              spad, param, self.pitch, whole, seg_bytes, param_slot)

        # Per instruction, registered every cycle (their operands hold still long before the
        # walk starts): the pool's offset in bytes, and the segment length below which a
        # segment's bytes fit a LOAD's 16-bit row_bytes (seg_len << lpitch < 2**16).
        pool_off = Signal(32)
        whole_limit = Signal(17)
        m.d.sync += [pool_off.eq(self.pool_sh << self.sh_page),
                     whole_limit.eq(1 << (16 - lpitch).as_unsigned())]
        # Per segment (with its block-table word): its length, its page's offset, its first
        # device address, and (KV_LOAD) the start of its scratchpad advance (the last head's
        # hand-over waits for it). The page number is below pool_pages (checked), so
        # (pool * pool_pages + page) << sh_page is (pool_sh | page) << sh_page, an OR of the
        # pool's part (fixed per instruction) and the page's.
        seg_len_next = Mux(tokens_left < room, tokens_left, room)
        with m.If(step.segment):
            if load:
                m.d.comb += [advance.start.eq(1), advance.a.eq(kv.spad_stride),
                             advance.b.eq(seg_len_next)]
            m.d.sync += [
                seg_len.eq(seg_len_next),
                last_seg.eq(tokens_left <= room),
                page_off.eq(pool_off | (self.table_word << self.sh_page)),
                base_off.eq(self.pool_base + slot_offset),
            ]
        with m.If(step.address_sum):
            m.d.sync += [seg_bytes.eq(seg_len << lpitch),
                         whole.eq(self.whole_rows & (seg_len < whole_limit))]
        # The device address: the segment's first (address_sum), then one pool on per head.
        with m.If(step.load_dram):
            m.d.sync += dram.eq(Mux(step.address_sum, base_off + page_off,
                                    dram + self.pool_step))
        # Per head: the segment's first head (segment), then the next one per hand-over.
        seg = step.segment
        with m.If(step.load_head):
            m.d.sync += [
                head.eq(Mux(seg, 0, head + 1)), head_zero.eq(seg),
                last_head.eq(Mux(seg, heads_m1 == 0, head == self.heads_m2)),
                spad.eq(Mux(seg, spad_seg,
                            spad + (kv.spad_head_step if load else kv.acc_head_step))),
            ]
            if not load:
                m.d.sync += [param.eq(Mux(seg, kv.param_addr, param + kv.param_head_step)),
                             param_slot.eq(Mux(seg, kv.param_slot,
                                               param_slot + kv.param_head_step[4:]))]
        # The walk: its start, then the next segment once the last head is handed over (the
        # controller's hand-over of that head waited for the scratchpad advance:
        # advance_busy).
        start = step.start
        # The first segment's slot offset, a shift by a register: registered every cycle
        # (its operands hold still long before the walk starts).
        first_slot_offset = Signal(32)
        m.d.sync += first_slot_offset.eq(pos_slot << lpitch)
        with m.If(step.load_walk):
            m.d.sync += [
                first_seg.eq(start),
                room.eq(Mux(start, page_tokens - pos_slot, page_tokens)),
                slot_offset.eq(Mux(start, first_slot_offset, 0)),
                tokens_left.eq(Mux(start, kv.count, tokens_left - seg_len)),
                spad_seg.eq(Mux(start, kv.spad_addr if load else kv.acc_addr,
                                spad_seg + (advance.product if load else seg_len))),
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
