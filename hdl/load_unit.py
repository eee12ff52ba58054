"""Load unit: executes LOAD and IM2COL, filling the input and weight scratchpads over the bus.

Per instruction: wait for a compute->load token if ``pop_next``; check every scratchpad row
and device-memory byte it would touch (:mod:`.load_checks`, over several cycles; an error
stops it before anything is written); then a
segment generator emits byte segments, the unit issues one bus read per non-zero segment, and
the returned beats are realigned into scratchpad rows (one aligner per scratchpad, since input
rows are R bytes and weight rows C bytes). After the instruction's last row is written, a
load->compute token is pushed if ``push_next``. Segments of the next instruction are issued
while earlier ones are still arriving; rows reach the two scratchpads in program order.
For timing, beats enter through a registered stage (:class:`.skid_buffer.SkidBuffer`), the
token push and a bus error's report leave from registers (the scratchpads close in the cycle
after the bad beat, as before), and queue counts are kept in registers.

Tested against the golden ISA simulator (:mod:`octet.sim.isa_sim`) by the accelerator tests.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import LAYOUTS, ErrorCode, Opcode, Target

from .flagged_queue import FlaggedQueue
from .load_checks import LoadChecks
from .read_aligner import ReadAligner
from .segment_generators import PIPELINE_SLACK, Im2colGenerator, LoadGenerator, segment_descriptor
from .skid_buffer import SkidBuffer
from .unit_ports import BusRequest, ErrorReport, InstructionStream, MemWrite

__all__ = ["LoadUnit"]

_SEG_DEPTH = 16


class LoadUnit(wiring.Component):
    """The accelerator's load unit.

    Parameters
    ----------
    config : AcceleratorConfig

    Ports
    -----
    i_instr : In(InstructionStream())
        LOAD and IM2COL instructions with their addresses.
    token_available : In(1)
        A compute->load token is queued. ``token_pop`` takes it.
    token_pop, token_push : Out(1)
        Take a compute->load token; give a load->compute token.
    mem_limit : In(33)
        Device memory is [0, mem_limit).
    halt : In(1)
        Another unit failed: take no more instructions, drain what is in flight without
        writing the scratchpads (no row that leaves from then on is written; rows reach the
        scratchpads a cycle after they leave; the control acts a cycle later).
    error : Out(ErrorReport())
    o_req : Out(BusRequest())
        Bus reads, served in order.
    i_data : In(stream.Signature({"data": bus bits, "error": 1}))
        The beats of this unit's reads.
    input_w, weight_w : Out(MemWrite)
        Scratchpad write ports.
    busy : Out(1)
        Anything queued or in flight.
    waiting : Out(1)
        Blocked on a token with nothing in flight (for deadlock detection).
    """

    def __init__(self, config: AcceleratorConfig):
        self._cfg = config
        super().__init__({
            "i_instr": In(InstructionStream()),
            "token_available": In(1), "token_pop": Out(1), "token_push": Out(1),
            "mem_limit": In(33), "halt": In(1),
            "error": Out(ErrorReport()),
            "o_req": Out(BusRequest()),
            "i_data": In(stream.Signature(data.StructLayout({"data": config.bus_bits,
                                                             "error": 1}))),
            "input_w": Out(MemWrite(8 * config.rows, config.input_rows)),
            "weight_w": Out(MemWrite(8 * config.cols, config.weight_rows)),
            "busy": Out(1), "waiting": Out(1), "pc": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        B = cfg.bus_bytes
        word = Signal(256)
        pc = Signal(32)
        m.d.comb += self.pc.eq(pc)
        ld = LAYOUTS[Opcode.LOAD](word)
        ic = LAYOUTS[Opcode.IM2COL](word)
        opcode = Signal(4)
        m.d.comb += opcode.eq(word[:4])
        flags = Signal(4)
        m.d.comb += flags.eq(word[4:8])
        pop_next, push_next = flags[1], flags[3]

        m.submodules.load_gen = load_gen = LoadGenerator(B)
        m.submodules.im2col_gen = im2col_gen = Im2colGenerator(B, cfg.rows)
        m.d.comb += [load_gen.instr.eq(ld), im2col_gen.instr.eq(ic)]

        # Segments waiting for their beats; requests queue separately towards the bus. The
        # segment queue is read straight from its LUT RAM (no output register), so taking a
        # segment (the dispatch decision) only moves the read pointer instead of enabling
        # a register as wide as the segment; the head's target (bit 0), which the dispatch
        # decision itself needs, and the queue's status come from flip-flops.
        seg_layout = data.StructLayout({"target": 1, "seg": segment_descriptor(B),
                                        "push": 1, "pc": 32})
        m.submodules.segs = segs = FlaggedQueue(seg_layout.size, _SEG_DEPTH, flag_bits=1)
        m.submodules.reqs = reqs = fifo.SyncFIFOBuffered(width=48, depth=_SEG_DEPTH)
        # Own count of the request queue (a library FIFO's level output is an adder; the
        # segment queue's is a register).
        n_segs = segs.level
        n_reqs = Signal(range(_SEG_DEPTH + 1))
        m.d.sync += n_reqs.eq(n_reqs + (reqs.w_en & reqs.w_rdy) - (reqs.r_en & reqs.r_rdy))
        # Registered (it gates every step of the generators): from the counts of the cycle
        # before, so one segment fewer, as a segment may have been added since; the
        # generators' steps in flight beyond that are PIPELINE_SLACK.
        # One copy per generator (each enables dozens of registers there); the second is
        # reset-less, which keeps Yosys from merging the two (after a reset it holds the
        # value of the cycle before for one cycle, while the generators are idle).
        room = Signal()
        room_im2col = Signal(reset_less=True)
        has_room = ((n_segs <= _SEG_DEPTH - PIPELINE_SLACK - 2) &
                    (n_reqs <= _SEG_DEPTH - PIPELINE_SLACK - 2))
        m.d.sync += [room.eq(has_room), room_im2col.eq(has_room)]
        m.d.comb += [load_gen.room.eq(room), im2col_gen.room.eq(room_im2col)]

        target = Signal()
        gen_seg = Signal(segment_descriptor(B))
        gen_valid = Signal()
        m.d.comb += [gen_valid.eq(load_gen.o_valid | im2col_gen.o_valid),
                     gen_seg.eq(Mux(load_gen.o_valid, load_gen.o_seg, im2col_gen.o_seg))]
        entry = Signal(seg_layout)
        m.d.comb += [entry.seg.eq(gen_seg), entry.target.eq(target),
                     entry.push.eq(gen_seg.last & push_next), entry.pc.eq(pc),
                     segs.w_data.eq(entry), segs.w_en.eq(gen_valid),
                     reqs.w_data.eq(gen_seg.addr | (gen_seg.beats << 32)),
                     reqs.w_en.eq(gen_valid & ~gen_seg.zero)]
        m.d.comb += [self.o_req.payload.addr.eq(reqs.r_data[:32]),
                     self.o_req.payload.beats.eq(reqs.r_data[32:48]),
                     self.o_req.valid.eq(reqs.r_rdy), reqs.r_en.eq(self.o_req.ready)]

        # --- Front: take, wait for token, check, generate. ---
        m.submodules.checks = checks = LoadChecks(cfg)
        m.d.comb += [checks.word.eq(word), checks.mem_limit.eq(self.mem_limit)]
        m.d.comb += [im2col_gen.ix_start.eq(checks.ix_start),
                     im2col_gen.iy_start.eq(checks.iy_start),
                     im2col_gen.pix_start.eq(checks.pix_start),
                     im2col_gen.line_start.eq(checks.line_start),
                     im2col_gen.wc.eq(checks.wc), im2col_gen.sc.eq(checks.sc),
                     im2col_gen.swc.eq(checks.swc)]
        err_code = Signal(ErrorCode)
        m.d.comb += [self.error.code.eq(err_code)]
        halted = Signal()
        m.d.comb += self.error.valid.eq(halted)
        check_fail = Signal()

        def fail():
            m.d.comb += check_fail.eq(1)
            m.next = "HALT"

        bus_err = Signal()
        bus_err_pc = Signal(32)
        back_busy = self._back(m, segs, seg_layout, bus_err, bus_err_pc)
        # The back end's activity, registered for the busy and waiting outputs (the
        # accelerator's completion and deadlock checks): a cycle late to fall, never late to
        # rise, as the back end only fills from segments generated while ``full``, and its
        # parts hand work on to each other without a gap.
        back_q = Signal()
        m.d.sync += back_q.eq(back_busy | (n_segs != 0))
        # Until the unit halts, the report follows its would-be code and pc (a bus error
        # wins over a failed check in the same cycle), so halting only sets the flags.
        with m.If(~halted):
            m.d.sync += [err_code.eq(Mux(bus_err, ErrorCode.BUS_ERROR, checks.code)),
                         self.error.pc.eq(Mux(bus_err, bus_err_pc, pc))]
        with m.If(bus_err | check_fail):
            m.d.sync += halted.eq(1)
        # Another unit's error is acted on a cycle late (registered here, so the accelerator's
        # error OR does not run on into every start and enable of this unit); the scratchpad
        # writes still close at once on ``halt`` itself: no row leaving from then on is written.
        halt_q = Signal()
        m.d.sync += halt_q.eq(self.halt)
        stop = halt_q | halted
        # The checks start from a register, a cycle after the token is taken, so the token
        # queue's count does not run on into the multipliers' operand registers.
        check_go = Signal()
        m.d.sync += check_go.eq(0)
        m.d.comb += checks.start.eq(check_go)
        # The generators register their start themselves (a cycle after the checks' verdict),
        # so the flip-flop that loads each one's state is placed beside it.
        is_load = opcode == Opcode.LOAD
        # The instruction is taken into ``word``/``pc`` whenever they are free (they load every
        # cycle until an instruction arrives, so ``valid`` only reaches ``full``), and kept
        # until the instruction has been generated; ``ready`` comes from flip-flops.
        full = Signal()
        m.d.comb += self.i_instr.ready.eq(~full & ~stop)
        with m.If(~full):
            m.d.sync += [word.eq(self.i_instr.payload.word), pc.eq(self.i_instr.payload.pc),
                         full.eq(self.i_instr.valid & ~stop)]
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(stop):
                    m.next = "HALT"
                with m.Elif(full):
                    m.next = "TOKEN"
            with m.State("TOKEN"):
                m.d.comb += self.waiting.eq(pop_next & ~self.token_available & ~back_q)
                with m.If(stop):
                    m.next = "HALT"
                with m.Elif(~pop_next | self.token_available):
                    m.d.comb += self.token_pop.eq(pop_next)
                    m.d.sync += check_go.eq(1)
                    m.d.sync += target.eq((opcode == Opcode.LOAD) &
                                          (ld.target == Target.WEIGHT))
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(stop):
                    m.next = "HALT"
                with m.Elif(checks.done):
                    with m.If(checks.failed):
                        fail()
                    with m.Else():
                        m.d.comb += [load_gen.start.eq(is_load), im2col_gen.start.eq(~is_load)]
                        m.next = "GEN"
            with m.State("GEN"):
                with m.If(stop):
                    m.next = "HALT"
                with m.Elif(~load_gen.busy & ~im2col_gen.busy):
                    m.d.sync += full.eq(0)
                    m.next = "IDLE"
            with m.State("HALT"):
                pass

        m.d.comb += self.busy.eq(full & ~fsm.ongoing("HALT") | back_q)
        return m

    def _back(self, m, segs, seg_layout, bus_err, bus_err_pc):
        """Route segments and beats to the aligner of their scratchpad; write the rows."""
        cfg = self._cfg
        B = cfg.bus_bytes
        tag = data.StructLayout({"spad_row": 16, "push": 1})
        aligners = [ReadAligner(B, cfg.rows, tag.size), ReadAligner(B, cfg.cols, tag.size)]
        m.submodules.input_aligner, m.submodules.weight_aligner = aligners
        ports = [self.input_w, self.weight_w]

        # Beats enter through a registered stage: the aligners' absorb logic starts from
        # flip-flops, and the bus side's ready is a flip-flop too.
        m.submodules.beat_stage = stage = SkidBuffer(self.i_data.payload.shape())
        wiring.connect(m, wiring.flipped(self.i_data), stage.i_stream)
        beat = stage.o_stream
        # A bus error is acted on a cycle later; the scratchpads are closed from that cycle on,
        # as they would be by the error itself (rows never leave in the cycle of a beat).
        err_pend = Signal()
        err_pend_pc = Signal(32)
        m.d.comb += [bus_err.eq(err_pend), bus_err_pc.eq(err_pend_pc)]
        push_pend = Signal()        # token pushes, registered
        m.d.comb += self.token_push.eq(push_pend)

        head = Signal(seg_layout)
        head_target = segs.r_flags[0]       # head.target, from a flip-flop
        m.d.comb += head.eq(segs.r_data)
        route = Signal()            # aligner receiving beats
        beats_left = Signal(16)
        beating = Signal()          # beats_left != 0, kept as a flag
        # Each aligner's idle flag, registered and conservative (a cycle late to fall idle,
        # at once busy when a segment is dispatched to it), so dispatch starts from flip-flops.
        idle_q = [Signal(init=1, name=f"aligner_idle{t}") for t in range(2)]
        other_idle = Mux(head_target, idle_q[0], idle_q[1])
        target_ready = Mux(head_target, aligners[1].i_seg.ready, aligners[0].i_seg.ready)
        dispatch = Signal()
        beat_taken = Signal()
        last_beat = Signal()        # beats_left == 1, kept as a flag
        # Rows reach the scratchpads in program order: switch aligners only when both are
        # idle, so a token pushed after an instruction's last row covers all earlier loads.
        # The next segment is dispatched in the cycle the current one's last beat is taken,
        # so back-to-back short segments (IM2COL's) lose no cycle between them.
        m.d.comb += dispatch.eq(segs.r_rdy & (~beating | (beat_taken & last_beat)) &
                                target_ready & ((head_target == route) | other_idle))
        m.d.comb += segs.r_en.eq(dispatch)
        m.d.sync += [idle_q[t].eq(~al.busy & ~(dispatch & (head_target == t)))
                     for t, al in enumerate(aligners)]

        # The PC of the segment receiving beats: head.pc sampled every cycle (next_pc) is the
        # dispatched segment's in the cycle after dispatch, and kept (seg_pc) from then on, so
        # neither register's enable waits for the dispatch decision.
        seg_pc = Signal(32)
        next_pc = Signal(32)
        dispatched = Signal()
        cur_pc = Mux(dispatched, next_pc, seg_pc)
        m.d.sync += [next_pc.eq(head.pc), dispatched.eq(dispatch)]
        with m.If(dispatched):
            m.d.sync += seg_pc.eq(next_pc)
        seg_tag = Signal(tag)
        w_pending = []
        m.d.comb += [seg_tag.spad_row.eq(head.seg.spad_row), seg_tag.push.eq(head.push)]
        for t, al in enumerate(aligners):
            m.d.comb += [al.i_seg.valid.eq(dispatch & (head_target == t)),
                         al.i_seg.payload.offset.eq(head.seg.offset),
                         al.i_seg.payload.nbytes.eq(head.seg.nbytes),
                         al.i_seg.payload.zero.eq(head.seg.zero),
                         al.i_seg.payload.tag.eq(seg_tag)]
            row = al.o_row
            row_tag = Signal(tag, name=f"row_tag{t}")
            next_addr = Signal(16, name=f"next_addr{t}")   # the row after the last written
            addr = Signal(16, name=f"row_addr{t}")
            # Rows reach the scratchpad through a register stage, so the aligner is not
            # pulled towards the scratchpad's block RAMs (its segment start fanned out over
            # the chip). The rows written are the same, a cycle later: a token pushed after
            # an instruction's last row is seen by the compute unit two cycles after the row
            # leaves (push_pend, then the token queue's flag), after the write.
            w_en = Signal(name=f"spad_w_en{t}")
            w_addr = Signal(16, name=f"spad_w_addr{t}", reset_less=True)
            w_data = Signal(len(row.payload.data), name=f"spad_w_data{t}", reset_less=True)
            m.d.comb += [row_tag.eq(row.payload.tag),
                         addr.eq(Mux(row.payload.first, row_tag.spad_row, next_addr)),
                         row.ready.eq(1),
                         ports[t].addr.eq(w_addr), ports[t].data.eq(w_data),
                         ports[t].en.eq(w_en)]
            m.d.sync += [w_addr.eq(addr), w_data.eq(row.payload.data),
                         w_en.eq(row.valid & ~self.halt & ~self.error.valid & ~err_pend)]
            w_pending.append(w_en)
            with m.If(row.valid):
                m.d.sync += next_addr.eq(addr + 1)
            m.d.comb += [al.i_data.payload.eq(beat.payload.data),
                         al.i_data.valid.eq(beat.valid & beating & (route == t))]
        m.d.sync += push_pend.eq(Cat(*(a.o_row.valid & a.o_row.payload.last &
                                       a.o_row.payload.tag[-1] for a in aligners)).any())
        m.d.comb += beat.ready.eq(beating & Mux(route, aligners[1].i_data.ready,
                                                aligners[0].i_data.ready))
        m.d.sync += err_pend.eq(0)
        m.d.comb += beat_taken.eq(beat.valid & beat.ready)
        with m.If(beat_taken):
            m.d.sync += [beats_left.eq(beats_left - 1), beating.eq(~last_beat),
                         last_beat.eq(beats_left == 2)]
            with m.If(beat.payload.error):
                m.d.sync += err_pend.eq(1)
        # The PC goes with an error beat whether or not it is taken in this cycle (it is
        # read only in the cycle after one is taken), so its enable is made of flip-flops.
        with m.If(beat.valid & beat.payload.error & beating):
            m.d.sync += err_pend_pc.eq(cur_pc)
        # (After the beat's updates, so a segment dispatched with the last beat wins.)
        with m.If(dispatch):
            m.d.sync += [route.eq(head_target),
                         beats_left.eq(Mux(head.seg.zero, 0, head.seg.beats)),
                         beating.eq(~head.seg.zero & (head.seg.beats != 0)),
                         last_beat.eq(~head.seg.zero & (head.seg.beats == 1))]
        return (beating | stage.busy | aligners[0].busy | aligners[1].busy | err_pend |
                push_pend | w_pending[0] | w_pending[1])
