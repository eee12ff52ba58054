"""Fetch unit: reads the program from device memory, decodes and dispatches instructions.

From ``prog_base`` on, it requests one instruction (32 bytes) per bus read, keeping several in
flight but never more than its instruction buffer has room for, so it takes every beat as it
arrives and the shared in-order read channel never waits on it (which would block the load
unit's data behind a fetch that waits for a full queue). Each complete instruction is checked
(known opcode, header flags allowed for its unit, reserved bits zero) and pushed to the queue of
its unit (load, compute or store). END stops fetching; reads already issued past it are drained
and dropped. Fetching stops before the first instruction that would lie beyond ``mem_limit``;
reaching it without an END is a DRAM_RANGE error.

Each queue (a :class:`~octet.hdl.head_queue.HeadQueue`) passes instructions on to a
:class:`~octet.hdl.credit_stage.CreditStage` and sends only while it holds a credit, so the
enables of the queue's wide output register come from the fetch unit's own flip-flops. Dispatch
decisions are registered: per unit, "the instruction in the decode stage goes to this unit's
queue and it has room", worked out in the cycle before.

Tested against the golden ISA simulator by the accelerator tests.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.isa import ALLOWED_FLAGS, INSTRUCTION_BYTES, LAYOUTS, QUEUE_OF, ErrorCode, Opcode, Unit

from .credit_stage import CreditSender, CreditStream
from .head_queue import HeadQueue
from .unit_ports import BusRequest, ErrorReport, instruction_layout

__all__ = ["FetchUnit"]

_FLAG_BITS = {"pop_prev": 0, "pop_next": 1, "push_prev": 2, "push_next": 3}
_QUEUE_DEPTH = 8


class FetchUnit(wiring.Component):
    """Instruction fetch, decode and dispatch.

    Parameters
    ----------
    bus_bytes : int

    Ports
    -----
    start : In(1)
        Begin at ``prog_base`` (the unit has just been reset).
    prog_base : In(32)
    mem_limit : In(33)
        Device memory is [0, mem_limit) (2**32 at most).
    halt : In(1)
    o_req : Out(BusRequest()), i_data : In(stream {data, error})
    o_load, o_compute, o_store : Out(CreditStream(instruction_layout()))
        The three units' queues, each to a ``CreditStage`` (it starts with
        ``CreditStage.CAPACITY`` credits).
    error : Out(ErrorReport())
    pc : Out(32)
        Address of the next instruction to decode.
    dispatched : Out(1)
        An instruction (END included) was decoded this cycle.
    ended : Out(1)
        END was decoded.
    busy : Out(1)
        Fetching, or reads still in flight.
    blocked : Out(1)
        A decoded instruction waits for space in its unit's queue.
    queues_empty : Out(1)
    """

    def __init__(self, bus_bytes):
        self._bus = bus_bytes
        super().__init__({
            "start": In(1), "prog_base": In(32), "mem_limit": In(33), "halt": In(1),
            "o_req": Out(BusRequest()),
            "i_data": In(stream.Signature(data.StructLayout({"data": 8 * bus_bytes,
                                                             "error": 1}))),
            "o_load": Out(CreditStream(instruction_layout())),
            "o_compute": Out(CreditStream(instruction_layout())),
            "o_store": Out(CreditStream(instruction_layout())),
            "error": Out(ErrorReport()), "pc": Out(32), "dispatched": Out(1),
            "ended": Out(1), "busy": Out(1), "blocked": Out(1), "queues_empty": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B = self._bus
        per = INSTRUCTION_BYTES // B          # beats per instruction
        capacity = 4                          # instructions buffered or in flight
        running = Signal()
        issue_pc = Signal(32)
        in_flight = Signal(range(capacity + 1))   # instructions requested, not yet assembled
        beats = Signal(range(per + 1))
        assembly = Signal(8 * INSTRUCTION_BYTES)
        # Assembled instructions waiting to be decoded; a request is only made when its slot
        # here is free, so beats never wait. The buffer's output is a register.
        # Each entry also holds, per opcode, "the reserved bits for that opcode are zero",
        # worked out beat by beat as the word arrives.
        ops = [op for op in Opcode if op is not Opcode.ILLEGAL]
        m.submodules.ibuf = ibuf = HeadQueue(8 * INSTRUCTION_BYTES + len(ops), capacity)
        # The decode stage: the instruction next in line with its checks already worked out
        # (in the cycle it left the buffer), so dispatch starts from registers.
        have_word = Signal()
        word = Signal(8 * INSTRUCTION_BYTES)
        legal = Signal()
        unit = Signal(Unit)
        flags_ok = Signal()
        halted = Signal()
        err_code = Signal(ErrorCode)
        m.d.comb += [self.error.valid.eq(halted), self.error.code.eq(err_code)]
        # halted, set in this cycle (it then stays set until the unit is reset).
        halt_now = Signal()
        end_now = Signal()                   # END is dispatched this cycle
        m.d.sync += [halted.eq(halted | halt_now), self.ended.eq(self.ended | end_now)]
        # Every error's pc is the pc of its cycle (prog_base at start), and nothing changes it
        # once halted: so error.pc follows the pc until then, enabled by a flip-flop alone.
        with m.If(~halted):
            m.d.sync += self.error.pc.eq(Mux(self.start, self.prog_base, self.pc))
        # "Not halted (here or by another unit) and not ended" as one flip-flop, worked out
        # from the next values of halted and ended, so the decisions below start from it.
        # Another unit's halt is seen a cycle late (through this register), so that the
        # accelerator's error OR does not run on into the queues and error registers; an
        # instruction a unit takes meanwhile is stopped there (every unit checks its halt
        # before acting on an instruction).
        live = Signal(init=1)
        halted_next = halted | halt_now
        live_next = ~self.halt & ~halted_next & ~(self.ended | end_now)
        m.d.sync += live.eq(live_next)

        # Each queue holds _QUEUE_DEPTH instructions; the decode stage writes one only when
        # it has room (see to_queue below), worked out from the level and the write only: a
        # read in the same cycle frees the slot a cycle later (the queue has one entry more,
        # which that spare slot covers). The queue's head goes on while a credit is held
        # (can_send, a flip-flop that also says "not halted"), so its head register's enable
        # is one LUT after flip-flops of the fetch unit.
        queues = {}
        for which, port in ((Unit.LOAD, self.o_load), (Unit.COMPUTE, self.o_compute),
                           (Unit.STORE, self.o_store)):
            name = which.name.lower()
            q = HeadQueue(256 + 32, _QUEUE_DEPTH + 1)
            m.submodules[f"{name}_queue"] = queues[which] = q
            sender = CreditSender(name)
            can_send = sender.can_send
            send = q.r_rdy & can_send
            sender.count(m, send, port.freed, allow=~self.halt & ~halted_next)
            m.d.comb += [port.valid.eq(send), port.payload.word.eq(q.r_data[:256]),
                         port.payload.pc.eq(q.r_data[256:]), q.r_en.eq(can_send)]
        m.d.comb += self.queues_empty.eq(Cat(*(q.level != 0 for q in queues.values())) == 0)

        with m.If(self.start):
            m.d.sync += [issue_pc.eq(self.prog_base), self.pc.eq(self.prog_base),
                         running.eq(1)]
            with m.If(self.prog_base[:5] != 0):
                m.d.sync += [err_code.eq(ErrorCode.MALFORMED), running.eq(0)]
                m.d.comb += halt_now.eq(1)

        # Requests: one instruction each, while the buffer has room and memory lasts. The range
        # check is registered; it is fresh one cycle after issue_pc last changed, so requests
        # go out at most every other cycle (an instruction is several beats anyway).
        in_range = Signal()
        fresh = Signal()
        last_start = Signal(signed(35))      # the last address an instruction may start at
        m.d.sync += [last_start.eq(self.mem_limit - INSTRUCTION_BYTES),
                     in_range.eq(issue_pc <= last_start)]
        m.d.comb += [self.o_req.valid.eq(running & fresh & live & in_range &
                                         (in_flight + ibuf.level < capacity)),
                     self.o_req.payload.addr.eq(issue_pc),
                     self.o_req.payload.beats.eq(per)]
        requested = self.o_req.valid & self.o_req.ready
        m.d.sync += fresh.eq(~requested & ~self.start)
        with m.If(requested):
            m.d.sync += issue_pc.eq(issue_pc + INSTRUCTION_BYTES)

        # Beats assemble into words; after END or an error they are dropped. Each beat is
        # registered first (beat_q follows the bus every cycle, beat_seen says it is one), so
        # the wide assembly register's enable is a flip-flop here, not the bus's valid. The
        # word is complete with its last beat still in beat_q: Cat(assembly, beat_q) then.
        m.d.comb += self.i_data.ready.eq(1)
        got = self.i_data.valid
        beat_q = Signal(8 * B)
        m.d.sync += beat_q.eq(self.i_data.payload.data)
        complete = Cat(assembly, beat_q)[8 * B:]
        # Reserved bits of the word's beats so far are zero (all ones before its first beat).
        spare_zero = Signal(len(ops), init=(1 << len(ops)) - 1)
        # Each beat position's compare is registered with the beat (zero_q[j][i]: reserved
        # bits of opcode i that lie in beat j are zero in this beat), and the beat's position
        # (beats_q) picks one after the register.
        zero_q = [Signal(len(ops), name=f"beat{j}_zero_q") for j in range(per)]
        for i, op in enumerate(ops):
            reserved = LAYOUTS[op]["reserved"]
            for j in range(per):
                lo = max(reserved.offset, 8 * B * j)
                hi = min(reserved.offset + reserved.width, 8 * B * (j + 1))
                if lo < hi:
                    bits = self.i_data.payload.data[lo - 8 * B * j:hi - 8 * B * j]
                    m.d.sync += zero_q[j][i].eq(bits == 0)
                else:
                    m.d.sync += zero_q[j][i].eq(1)
        beats_q = Signal.like(beats)
        beat_zero_q = Signal(len(ops))
        with m.Switch(beats_q):
            for j in range(per):
                with m.Case(j):
                    m.d.comb += beat_zero_q.eq(zero_q[j])
        # The flags are registered with the beat, and a complete word goes into the buffer
        # in the cycle after its last beat; it counts as in flight until then.
        beat_seen = Signal()                 # a beat arrived in the cycle before
        word_done = Signal()                 # ... the last of a word
        word_kept = Signal()                 # ... which goes into the buffer
        m.d.sync += [beats_q.eq(beats), beat_seen.eq(got),
                     word_done.eq(got & (beats == per - 1)),
                     word_kept.eq(got & (beats == per - 1) & live)]
        all_zero = spare_zero & beat_zero_q
        m.d.comb += [ibuf.w_data.eq(Cat(complete, all_zero)), ibuf.w_en.eq(word_kept)]
        with m.If(beat_seen):
            m.d.sync += [spare_zero.eq(Mux(word_done, spare_zero.init, all_zero)),
                         assembly.eq(complete)]
        with m.If(got):
            with m.If(beats == per - 1):
                m.d.sync += beats.eq(0)
            with m.Else():
                m.d.sync += beats.eq(beats + 1)
            with m.If(self.i_data.payload.error & live):
                m.d.sync += err_code.eq(ErrorCode.BUS_ERROR)
                m.d.comb += halt_now.eq(1)

        # Decode (checks of the buffer's head, registered with it).
        head = ibuf.r_data[:8 * INSTRUCTION_BYTES]
        head_zero = ibuf.r_data[8 * INSTRUCTION_BYTES:]
        opcode = head[:4]
        flags = head[4:8]
        head_legal = Signal()
        head_unit = Signal(Unit)
        head_ok = Signal()
        with m.Switch(opcode):
            for i, op in enumerate(ops):
                with m.Case(op):
                    allowed = sum(1 << _FLAG_BITS[f] for f in ALLOWED_FLAGS[op])
                    m.d.comb += [head_legal.eq(1), head_unit.eq(QUEUE_OF[op]),
                                 head_ok.eq(((flags & ~allowed & 0xF) == 0) & head_zero[i])]
        # Dispatch decisions for the decode stage's instruction (flags_ok implies legal),
        # registered: to_queue[u] "well-formed, for unit u, and u's queue has room"; go "one
        # of these, or a well-formed END". They are worked out from the next values of the
        # decode stage and the queues' levels. The wide enables are flip-flops of their own,
        # from the next values too: write[u] (have_word & live & to_queue[u], the queue's
        # write) and take (the decode stage takes the next instruction: it is empty or
        # dispatching, ~have_word | have_word & live & go).
        to_queue = {u: Signal(name=f"to_{u.name.lower()}") for u in queues}
        write = {u: Signal(name=f"{u.name.lower()}_write") for u in queues}
        go = Signal()
        take = Signal(init=1)
        decode = have_word & live & go
        m.d.comb += [self.blocked.eq(have_word & ~self.ended & flags_ok & ~go),
                     self.dispatched.eq(decode), end_now.eq(decode & (unit == Unit.FETCH))]
        m.d.comb += ibuf.r_en.eq(take)
        have_word_next = Mux(take, ibuf.r_rdy, have_word)
        unit_next = Mux(take, head_unit, unit)
        ok_next = Mux(take, head_ok, flags_ok)
        to_queue_next = []
        for u, q in queues.items():
            m.d.comb += [q.w_data.eq(Cat(word, self.pc)), q.w_en.eq(write[u])]
            to_queue_next.append(ok_next & (unit_next == u) &
                                 (q.level + q.w_en < _QUEUE_DEPTH))
            m.d.sync += [to_queue[u].eq(to_queue_next[-1]),
                         write[u].eq(have_word_next & live_next & to_queue_next[-1])]
        go_next = (ok_next & (unit_next == Unit.FETCH)) | Cat(*to_queue_next).any()
        m.d.sync += [go.eq(go_next), take.eq(~have_word_next | (live_next & go_next))]
        with m.If(have_word & live & ~flags_ok):
            m.d.sync += [err_code.eq(Mux(legal, ErrorCode.MALFORMED,
                                         ErrorCode.ILLEGAL_OPCODE))]
            m.d.comb += halt_now.eq(1)
        with m.If(take):
            m.d.sync += [have_word.eq(ibuf.r_rdy), word.eq(head), legal.eq(head_legal),
                         unit.eq(head_unit), flags_ok.eq(head_ok)]
        with m.If(decode):
            m.d.sync += self.pc.eq(self.pc + INSTRUCTION_BYTES)
        m.d.sync += in_flight.eq(in_flight + requested - word_done)

        # Nothing more will arrive and the next instruction lies beyond memory. "Nothing in
        # flight or buffered" is registered: once true with no request made (``fresh``) it
        # stays true, so the error is the same, a cycle later.
        drained = Signal()
        m.d.sync += drained.eq((in_flight == 0) & (ibuf.level == 0))
        with m.If(running & fresh & live & ~in_range & drained & ~have_word):
            m.d.sync += err_code.eq(ErrorCode.DRAM_RANGE)
            m.d.comb += halt_now.eq(1)
        m.d.comb += self.busy.eq((running & live) | (in_flight != 0))
        return m
