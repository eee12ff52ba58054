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

A KV instruction stays at the head of the queue until its last sub-instruction is handed
over (the controller reads its fields there). A failing KV instruction hands nothing over; it
reports its error once the unit has finished everything before it (and the token it would pop
is there), as the golden model (:mod:`octet.sim.isa_kv`, the reference for all of the above)
does. Descriptor and table words come through a :class:`~.word_reader.WordReader`, so the
shared read channel never waits for the controller.

This module holds the state machine that sequences all of it, the word reads and the
hand-over to the unit; the arithmetic it steps through lives in :mod:`.kv_checks` (steps 1 to
3: derived geometry, range compares, verdicts) and :mod:`.kv_sub_instruction` (step 4: page
segments, heads, translated addresses and the LOAD / STORE words).

Tested by ``tests/test_kv_controller.py`` (Amaranth simulator: the controller alone against
the golden model, every error code) and ``tests/test_kv_rtl.py`` (cocotb + Verilator, in the
accelerator, against the golden simulator).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.isa import ErrorCode, Opcode
from octet.kv_format import GEOMETRY

from .kv_checks import KvChecks, check_kv_arguments
from .kv_sub_instruction import KvSubInstruction
from .skid_buffer import SkidBuffer
from .unit_ports import BusRequest, ErrorReport, InstructionStream
from .word_reader import WordReader

__all__ = ["KvController", "kv_decode"]


def kv_decode(opcode):
    """The decode a controller's queue stage registers as its ``i_is_kv`` input.

    Returns a function of an instruction-stream payload that is true for an ``opcode``
    instruction (e.g. ``CreditStage(shape, flag=kv_decode(Opcode.KV_LOAD))``).
    """
    if opcode not in (Opcode.KV_LOAD, Opcode.KV_APPEND):
        raise ValueError(f"kv_decode opcode must be KV_LOAD or KV_APPEND, not {opcode!r}")
    return lambda payload: payload.word[:4] == opcode


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
        The unit's queue (a registered stage: a KV instruction is read in place until done).
    i_is_kv : In(1)
        ``kv_decode(opcode)`` of ``i_instr.payload``, registered beside it in the stage, so
        that ``i_instr.ready`` (the stage's output enable) is a LUT of flip-flops.
    o_instr : Out(InstructionStream())
        To the unit.
    seq_table, seq_count, pool_base : In(32)
        The KV_SEQ_TABLE, KV_SEQ_COUNT and KV_POOL_BASE registers.
    geometry : In(octet.kv_format.GEOMETRY)
        Copied into a local register while no KV instruction is being worked on (the KV
        registers do not change while a program runs).
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
        check_kv_arguments("KvController", config, opcode)
        self._cfg = config
        self._op = opcode
        B = config.bus_bytes
        super().__init__({
            "i_instr": In(InstructionStream()), "i_is_kv": In(1),
            "o_instr": Out(InstructionStream()),
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

        # A KV instruction stays at the head of the queue (in the registered stage in front of
        # the controller) until it is done, so the controller reads its fields there and has
        # no instruction register of its own.
        word = self.i_instr.payload.word
        pc = self.pc
        m.d.comb += pc.eq(self.i_instr.payload.pc)
        pop = word[5] if load else word[4]          # pop_next / pop_prev

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

        # The datapaths of the two phases, stepped by the state machine below: the checks
        # (kv_checks) and the page segments and heads with their sub-instructions
        # (kv_sub_instruction). Each check step flag is set in the state of the same name; the
        # sub-instruction steps are flip-flops (sub_step), set the cycle before their step.
        m.submodules.checks = checks = KvChecks(self._cfg, self._op)
        m.submodules.sub_instruction = sub = KvSubInstruction(self._op)
        table_word = reader.o_word.payload.word
        # The sub-instructions' segment step comes a cycle after its word is taken; the word
        # is kept meanwhile (loaded every cycle: no enable).
        table_word_q = Signal(32)
        m.d.sync += table_word_q.eq(table_word)
        # The geometry register, copied here while the controller waits for a KV instruction
        # (regs_open), so its shifts and decodes start from a local flip-flop; the enable is
        # the controller's own, so the two controllers' copies are not merged into one.
        regs_open = Signal(init=1)
        geometry = Signal(GEOMETRY)
        with m.If(regs_open):
            m.d.sync += geometry.eq(self.geometry)
        m.d.comb += [checks.word.eq(word), checks.seq_table.eq(self.seq_table),
                     checks.seq_count.eq(self.seq_count), checks.pool_base.eq(self.pool_base),
                     checks.geometry.eq(geometry), checks.mem_limit.eq(self.mem_limit),
                     checks.table_word.eq(table_word),
                     sub.word.eq(word), sub.geometry.eq(geometry),
                     sub.pool_base.eq(self.pool_base), sub.table_word.eq(table_word_q)]
        for name in ("pitch", "page_tokens", "pos_slot", "pool_sh", "sh_page", "pool_step",
                     "heads_m1", "heads_m2", "whole_rows"):
            m.d.comb += getattr(sub, name).eq(getattr(checks, name))
        sub_step = Signal.like(sub.step)
        m.d.sync += sub_step.eq(0)
        m.d.comb += sub.step.eq(sub_step)

        def fail(code):
            m.d.sync += [pending.eq(code), want.eq(0)]
            m.next = "REPORT"

        # Words of DESC and VALIDATE are checked a cycle after they are taken (took_*), and
        # the first bad one is kept (word_bad, word_code) until the state after the last word.
        took, took_err, took_page = Signal(), Signal(), Signal()
        validating = Signal()
        word_bad = Signal()
        word_code = Signal(ErrorCode)
        m.d.comb += [checks.word_bad.eq(word_bad), checks.word_code.eq(word_code)]
        m.d.sync += [took.eq(reader.o_word.valid & reader.o_word.ready),
                     took_err.eq(reader.o_word.payload.error),
                     took_page.eq(validating &
                                  ((reader.o_word.payload.word & checks.page_mask) != 0))]
        with m.If(took & ~word_bad & (took_err | took_page)):
            m.d.sync += [word_bad.eq(1),
                         word_code.eq(Mux(took_err, ErrorCode.BUS_ERROR, ErrorCode.KV_PAGE))]
        left = Signal(18)                 # table words still to check
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

        # Instructions for the unit pass a registered stage, so that the unit's ready logic
        # ends there (o_instr below is the stage's input; its output stops on halt). The
        # store unit's ready is low on halt already, so in front of it the halt is left out
        # of the stage's ready (which enables its output register).
        m.submodules.out_stage = stage = SkidBuffer(self.o_instr.payload.shape())
        m.d.comb += [self.o_instr.valid.eq(stage.o_stream.valid & ~stop_now),
                     self.o_instr.payload.eq(stage.o_stream.payload),
                     stage.o_stream.ready.eq(self.o_instr.ready & (~stop_now if load else 1))]
        o_instr = stage.i_stream
        out = Signal(256)
        m.d.comb += [o_instr.payload.word.eq(out), o_instr.payload.pc.eq(pc)]
        last_head, last_seg = sub.last_head, sub.last_seg
        m.d.comb += out.eq(sub.sub_instr)

        # Flags for the two states that drive the stage's input, kept in flip-flops beside the
        # FSM, so the pass-through and hand-over handshakes, the stage's input multiplexer and
        # the queue's ready do not wait for the decode of the FSM's state: ``idle_go`` (IDLE and
        # not halted: set on the transitions into IDLE, cleared on those out of it and on halt)
        # and ``in_hand`` (HAND).
        idle_go = Signal()
        in_hand = Signal()
        m.d.sync += idle_go.eq(0)
        is_kv = self.i_is_kv
        pass_valid = idle_go & ~is_kv & self.i_instr.valid
        # A KV instruction leaves the queue once it is done (pop_kv, in DONE).
        pop_kv = Signal()
        m.d.sync += pop_kv.eq(0)
        # Sub-instructions are handed over at most every other cycle: the head's registers
        # move on the cycle after a hand-over (sub_step.hand), so their enables come from
        # flip-flops; sub_instr is not yet the next head's in that cycle.
        hand_valid = Signal()
        hand_ok = in_hand & ~stop & ~sub_step.hand
        if load:
            hand_ok &= ~(last_head & sub.advance_busy)
        m.d.comb += hand_valid.eq(hand_ok)
        hand_fire = hand_valid & o_instr.ready
        m.d.comb += [
            o_instr.valid.eq(pass_valid | hand_valid),
            self.i_instr.ready.eq((idle_go & ~is_kv & o_instr.ready) | pop_kv),
        ]
        with m.If(~in_hand):
            m.d.comb += out.eq(self.i_instr.payload.word)

        can = Signal()                    # REPORT may report (two cycles late)
        m.d.sync += can.eq(0)
        unit_busy_q, stage_busy_q, token_q = Signal(), Signal(), Signal()
        m.d.sync += [unit_busy_q.eq(self.unit_busy), stage_busy_q.eq(stage.busy),
                     token_q.eq(self.token_available)]
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(idle_go & is_kv & self.i_instr.valid):
                    m.d.sync += regs_open.eq(0)
                    m.next = "CHECK"
                with m.Else():
                    m.d.sync += idle_go.eq(~self.halt)
            # --- Checks (a failing one reports its error) ---
            with m.State("CHECK"):
                m.d.comb += checks.step.check.eq(1)
                m.d.sync += [word_bad.eq(0), validating.eq(0), want.eq(0)]
                m.next = "VERDICT"
            with m.State("VERDICT"):
                m.d.comb += checks.step.verdict.eq(1)
                m.next = "POOL"
            with m.State("POOL"):
                m.d.comb += checks.step.pool.eq(1)
                m.next = "AREA_SUM"
            with m.State("AREA_SUM"):
                m.d.comb += checks.step.area_sum.eq(1)
                with m.If(checks.chk_bad):
                    fail(checks.chk_code)
                with m.Else():
                    m.next = "AREA_COMPARE"
            with m.State("AREA_COMPARE"):
                m.next = "AREA_COMPARE2"
            with m.State("AREA_COMPARE2"):
                m.next = "AREA"
            with m.State("AREA"):
                m.d.comb += checks.step.area.eq(1)
                m.next = "AREA_VERDICT"
            with m.State("AREA_VERDICT"):
                with m.If(checks.chk_bad):
                    fail(checks.chk_code)
                with m.Else():
                    read(checks.desc, 2, 0)
                    m.next = "DESC"
            with m.State("DESC"):
                # A bus error is reported at RANGE_CHECK (word_bad), before the other checks.
                with m.If(reader.o_word.valid):
                    took_word()
                    m.d.comb += checks.step.desc.eq(1)
                    with m.If(left_one):
                        m.next = "RANGE"
            with m.State("RANGE"):
                m.d.comb += checks.step.range.eq(1)
                m.next = "RANGE_COMPARE"
            with m.State("RANGE_COMPARE"):
                m.d.comb += checks.step.range_compare.eq(1)
                m.next = "RANGE_COMPARE2"
            with m.State("RANGE_COMPARE2"):
                m.next = "RANGE_CHECK"
            with m.State("RANGE_CHECK"):
                m.d.comb += checks.step.range_check.eq(1)
                m.next = "TABLE_END"
            with m.State("TABLE_END"):
                m.d.comb += checks.step.table_end.eq(1)
                with m.If(checks.chk_bad):
                    fail(checks.chk_code)
                with m.Else():
                    m.next = "TABLE_COMPARE"
            with m.State("TABLE_COMPARE"):
                m.next = "TABLE_COMPARE2"
            with m.State("TABLE_COMPARE2"):
                m.next = "TABLE"
            with m.State("TABLE"):
                m.d.comb += checks.step.table.eq(1)
                m.next = "TABLE_VERDICT"
            with m.State("TABLE_VERDICT"):
                with m.If(checks.chk_bad):
                    fail(checks.chk_code)
                with m.Else():
                    read(checks.lo, checks.n_pages, checks.n_pages_one)
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
                    m.d.sync += [sub_step.start.eq(1), sub_step.load_walk.eq(1)]
                    m.next = "REREAD"
            # --- Sub-instructions: per page segment, one per head ---
            with m.State("REREAD"):
                read(checks.lo, checks.n_pages, checks.n_pages_one)
                m.next = "SEGMENT"
            with m.State("SEGMENT"):
                with m.If(reader.o_word.valid):
                    m.d.sync += [want.eq(0), sub_step.segment.eq(1),
                                 sub_step.load_head.eq(1)]
                    m.next = "ADDRESS"
            with m.State("ADDRESS"):
                m.d.sync += [sub_step.address_sum.eq(1), sub_step.load_dram.eq(1)]
                m.next = "ADDRESS_SUM"
            with m.State("ADDRESS_SUM"):
                m.d.sync += in_hand.eq(1)
                m.next = "HAND"
            with m.State("HAND"):
                # (The hand-over's register updates are below, outside the FSM: hand_fire
                # implies this state.)
                with m.If(hand_fire & last_head):
                    with m.If(last_seg):
                        m.d.sync += pop_kv.eq(1)
                        m.next = "DONE"
                    with m.Else():
                        m.next = "SEGMENT"
                with m.If(stop):
                    m.d.sync += in_hand.eq(0)
                    m.next = "HALT"
            with m.State("DONE"):
                # The KV instruction leaves the queue (pop_kv); the next one is there a cycle
                # later, in IDLE.
                m.d.sync += [idle_go.eq(~self.halt), regs_open.eq(1)]
                m.next = "IDLE"
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
        # HAND: one sub-instruction per head (sub's hand step, a cycle later); the last head's
        # hand-over moves on to the next segment (hand_valid waits for the scratchpad advance).
        with m.If(hand_fire):
            m.d.sync += [sub_step.hand.eq(1), sub_step.load_head.eq(1),
                         sub_step.load_dram.eq(1)]
            with m.If(last_head):
                m.d.sync += [in_hand.eq(0), sub_step.load_walk.eq(1)]
                with m.If(~last_seg):
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
