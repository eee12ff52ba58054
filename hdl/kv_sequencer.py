"""The KV-cache controller's state machine: the steps of one KV instruction, a state a cycle.

:class:`KvSequencer` is the control half of :class:`~.kv_controller.KvController`, which holds
the datapaths, the word reader and the stage in front of the unit. It steps the checks
(:mod:`.kv_checks`) and acts on their verdicts, starts the descriptor and block-table reads and
takes their words (keeping the first bad one), steps the sub-instructions
(:mod:`.kv_sub_instruction`) and flags their hand-over, and reports a failing instruction's
error once everything before it has finished. Every register a state sets lives here, with all
of its assignments, including the flags the controller's handshakes read without waiting for
the decode of the state (``idle_go``, ``in_hand``, ``pop_kv``).

Tested through the controller by ``tests/test_kv_controller.py`` (Amaranth simulator, every
error code against the golden model) and ``tests/test_kv_rtl.py`` (cocotb + Verilator).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.isa import ErrorCode

from .kv_checks import KV_CHECK_STEPS
from .kv_sub_instruction import KV_SUB_STEPS
from .unit_ports import ErrorReport

__all__ = ["KvSequencer"]


class KvSequencer(wiring.Component):
    """Sequences a KV_LOAD or KV_APPEND: checks, table reads, hand-over, error report.

    Ports
    -----
    i_valid, is_kv, pop : In(1)
        The queue holds an instruction; it is the controller's KV instruction; its pop flag.
    pc : In(32)
        The instruction's address (for the error report).
    halt : In(1)
        Another unit failed (acted on a cycle late, except by ``stop_now``).
    unit_busy, token_available, stage_busy : In(1)
        The unit is executing or waiting; ``pop``'s token is queued; the stage in front of
        the unit holds an instruction.
    check_step : Out(KV_CHECK_STEPS)
    chk_bad, chk_code, desc, lo, n_pages, n_pages_one, page_mask : In
        From :class:`~.kv_checks.KvChecks` (same widths).
    word_bad : Out(1), word_code : Out(ErrorCode)
        The first bad descriptor or table word (for the checks' RANGE_CHECK verdict).
    rd_start, rd_addr, rd_count, rd_flush : Out
        The word reader's start, addr, count and flush (flip-flops).
    i_word : In(stream {word: 32, error: 1})
        The word reader's words (``ready`` is a flip-flop).
    reader_busy : In(1)
    sub_step : Out(KV_SUB_STEPS)
        Flip-flops, each set the cycle before its step.
    last_head, last_seg : In(1)
        From :class:`~.kv_sub_instruction.KvSubInstruction`.
    hand_fire : In(1)
        The unit's stage takes a sub-instruction (only while ``in_hand``).
    regs_open, idle_go, in_hand, pop_kv : Out(1)
        Flip-flops: no KV instruction is being worked on (the geometry copy's enable); idle
        and not halted (ordinary instructions pass); handing sub-instructions over; the KV
        instruction is done and leaves the queue.
    stop, stop_now : Out(1)
        This or another unit failed (a cycle late; at once).
    error : Out(ErrorReport())
    waiting : Out(1)
        A checked-bad instruction waits for its token (for deadlock detection).
    working, reporting : Out(1)
        Neither idle nor halted; waiting to report an error.
    """

    def __init__(self):
        super().__init__({
            "i_valid": In(1), "is_kv": In(1), "pop": In(1), "pc": In(32), "halt": In(1),
            "unit_busy": In(1), "token_available": In(1), "stage_busy": In(1),
            "check_step": Out(KV_CHECK_STEPS), "chk_bad": In(1), "chk_code": In(ErrorCode),
            "desc": In(34), "lo": In(34), "n_pages": In(18), "n_pages_one": In(1),
            "page_mask": In(32), "word_bad": Out(1), "word_code": Out(ErrorCode),
            "rd_start": Out(1), "rd_addr": Out(32), "rd_count": Out(18), "rd_flush": Out(1),
            "i_word": In(stream.Signature(data.StructLayout({"word": 32, "error": 1}))),
            "reader_busy": In(1),
            "sub_step": Out(KV_SUB_STEPS), "last_head": In(1), "last_seg": In(1),
            "hand_fire": In(1),
            "regs_open": Out(1, init=1), "idle_go": Out(1), "in_hand": Out(1),
            "pop_kv": Out(1), "stop": Out(1), "stop_now": Out(1),
            "error": Out(ErrorReport()), "waiting": Out(1), "working": Out(1),
            "reporting": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pc, pop, word_in = self.pc, self.pop, self.i_word
        # (The checks' and sub-instructions' step flags: set in the state of the same name;
        # the sub-instruction steps are flip-flops, set the cycle before their step.)
        step = self.check_step
        sub_step = self.sub_step
        m.d.sync += sub_step.eq(0)
        last_head, last_seg, hand_fire = self.last_head, self.last_seg, self.hand_fire
        regs_open, idle_go, in_hand, pop_kv = (self.regs_open, self.idle_go, self.in_hand,
                                               self.pop_kv)

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
        m.d.comb += [self.stop.eq(stop), self.stop_now.eq(self.halt | halted)]

        def fail(code):
            m.d.sync += [pending.eq(code), want.eq(0)]
            m.next = "REPORT"

        # Words of DESC and VALIDATE are checked a cycle after they are taken (took_*), and
        # the first bad one is kept (word_bad, word_code) until the state after the last word.
        took, took_err, took_page = Signal(), Signal(), Signal()
        validating = Signal()
        word_bad = Signal()
        word_code = Signal(ErrorCode)
        m.d.comb += [self.word_bad.eq(word_bad), self.word_code.eq(word_code)]
        m.d.sync += [took.eq(word_in.valid & word_in.ready),
                     took_err.eq(word_in.payload.error),
                     took_page.eq(validating &
                                  ((word_in.payload.word & self.page_mask) != 0))]
        with m.If(took & ~word_bad & (took_err | took_page)):
            m.d.sync += [word_bad.eq(1),
                         word_code.eq(Mux(took_err, ErrorCode.BUS_ERROR, ErrorCode.KV_PAGE))]
        left = Signal(18)                 # table words still to check
        left_one = Signal()               # left == 1, kept as a flag
        # The word reader's start, registered (its run begins the cycle after the state).
        rd_start, rd_addr, rd_count = self.rd_start, self.rd_addr, self.rd_count
        m.d.sync += rd_start.eq(0)

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
        m.d.comb += [word_in.ready.eq(want), self.rd_flush.eq(flush_q)]

        m.d.sync += [idle_go.eq(0), pop_kv.eq(0)]
        can = Signal()                    # REPORT may report (two cycles late)
        m.d.sync += can.eq(0)
        unit_busy_q, stage_busy_q, token_q = Signal(), Signal(), Signal()
        m.d.sync += [unit_busy_q.eq(self.unit_busy), stage_busy_q.eq(self.stage_busy),
                     token_q.eq(self.token_available)]
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(idle_go & self.is_kv & self.i_valid):
                    m.d.sync += regs_open.eq(0)
                    m.next = "CHECK"
                with m.Else():
                    m.d.sync += idle_go.eq(~self.halt)
            # --- Checks (a failing one reports its error) ---
            with m.State("CHECK"):
                m.d.comb += step.check.eq(1)
                m.d.sync += [word_bad.eq(0), validating.eq(0), want.eq(0)]
                m.next = "VERDICT"
            with m.State("VERDICT"):
                m.d.comb += step.verdict.eq(1)
                m.next = "POOL"
            with m.State("POOL"):
                m.d.comb += step.pool.eq(1)
                m.next = "AREA_SUM"
            with m.State("AREA_SUM"):
                m.d.comb += step.area_sum.eq(1)
                with m.If(self.chk_bad):
                    fail(self.chk_code)
                with m.Else():
                    m.next = "AREA_COMPARE"
            with m.State("AREA_COMPARE"):
                m.next = "AREA_COMPARE2"
            with m.State("AREA_COMPARE2"):
                m.next = "AREA"
            with m.State("AREA"):
                m.d.comb += step.area.eq(1)
                m.next = "AREA_VERDICT"
            with m.State("AREA_VERDICT"):
                with m.If(self.chk_bad):
                    fail(self.chk_code)
                with m.Else():
                    read(self.desc, 2, 0)
                    m.next = "DESC"
            with m.State("DESC"):
                # A bus error is reported at RANGE_CHECK (word_bad), before the other checks.
                with m.If(word_in.valid):
                    took_word()
                    m.d.comb += step.desc.eq(1)
                    with m.If(left_one):
                        m.next = "RANGE"
            with m.State("RANGE"):
                m.d.comb += step.range.eq(1)
                m.next = "RANGE_COMPARE"
            with m.State("RANGE_COMPARE"):
                m.d.comb += step.range_compare.eq(1)
                m.next = "RANGE_COMPARE2"
            with m.State("RANGE_COMPARE2"):
                m.next = "RANGE_CHECK"
            with m.State("RANGE_CHECK"):
                m.d.comb += step.range_check.eq(1)
                m.next = "TABLE_END"
            with m.State("TABLE_END"):
                m.d.comb += step.table_end.eq(1)
                with m.If(self.chk_bad):
                    fail(self.chk_code)
                with m.Else():
                    m.next = "TABLE_COMPARE"
            with m.State("TABLE_COMPARE"):
                m.next = "TABLE_COMPARE2"
            with m.State("TABLE_COMPARE2"):
                m.next = "TABLE"
            with m.State("TABLE"):
                m.d.comb += step.table.eq(1)
                m.next = "TABLE_VERDICT"
            with m.State("TABLE_VERDICT"):
                with m.If(self.chk_bad):
                    fail(self.chk_code)
                with m.Else():
                    read(self.lo, self.n_pages, self.n_pages_one)
                    m.d.sync += validating.eq(1)
                    m.next = "VALIDATE"
            with m.State("VALIDATE"):
                with m.If(word_in.valid):
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
                read(self.lo, self.n_pages, self.n_pages_one)
                m.next = "SEGMENT"
            with m.State("SEGMENT"):
                with m.If(word_in.valid):
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
                m.d.sync += can.eq(~unit_busy_q & ~stage_busy_q & ~self.stage_busy &
                                   (~pop | token_q))
                m.d.comb += self.waiting.eq(~self.unit_busy & pop & ~self.token_available &
                                            ~self.reader_busy & ~self.stage_busy)
                with m.If(halt_q):
                    m.next = "HALT"
                with m.Elif(can):
                    m.d.sync += [halted.eq(1), err_code.eq(pending), self.error.pc.eq(pc)]
                    m.next = "HALT"
            with m.State("HALT"):
                m.d.comb += flush.eq(1)
        # HAND: one sub-instruction per head (sub's hand step, a cycle later); the last head's
        # hand-over moves on to the next segment (the controller's hand_fire waits for the
        # scratchpad advance).
        with m.If(hand_fire):
            m.d.sync += [sub_step.hand.eq(1), sub_step.load_head.eq(1),
                         sub_step.load_dram.eq(1)]
            with m.If(last_head):
                m.d.sync += [in_hand.eq(0), sub_step.load_walk.eq(1)]
                with m.If(~last_seg):
                    m.d.sync += want.eq(1)
        with m.If(stop & ~fsm.ongoing("REPORT")):
            m.d.comb += flush.eq(1)

        m.d.comb += [self.working.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("HALT")),
                     self.reporting.eq(fsm.ongoing("REPORT"))]
        return m
