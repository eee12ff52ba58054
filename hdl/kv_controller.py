"""KV-cache controller: paged K/V address translation in front of the load or store unit.

It sits between the fetch unit's queue and one unit. Instructions of that unit pass through
(into a registered stage in front of the unit); a KV instruction (KV_LOAD in
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

This module wires the parts together and holds the word reader and the hand-over to the unit
(the registered stage in front of it, the pass-through and its handshakes). The state machine
that sequences all of it is :mod:`.kv_sequencer`; the arithmetic it steps through lives in
:mod:`.kv_checks` (steps 1 to 3: derived geometry, range compares, verdicts) and
:mod:`.kv_sub_instruction` (step 4: page segments, heads, translated addresses and the LOAD /
STORE words).

Tested by ``tests/test_kv_controller.py`` (Amaranth simulator: the controller alone against
the golden model, every error code) and ``tests/test_kv_rtl.py`` (cocotb + Verilator, in the
accelerator, against the golden simulator).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.isa import Opcode
from octet.kv_format import GEOMETRY

from .credit_stage import CreditSender, CreditStage
from .kv_checks import KvChecks, check_kv_arguments
from .kv_sequencer import KvSequencer
from .kv_sub_instruction import KvSubInstruction
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

        # The state machine (kv_sequencer) steps the datapaths of the two phases: the checks
        # (kv_checks) and the page segments and heads with their sub-instructions
        # (kv_sub_instruction). It starts the word reader's runs and takes its words.
        m.submodules.sequencer = seq = KvSequencer()
        m.submodules.checks = checks = KvChecks(self._cfg, self._op)
        m.submodules.sub_instruction = sub = KvSubInstruction(self._op)
        wiring.connect(m, reader.o_word, seq.i_word)
        wiring.connect(m, seq.error, wiring.flipped(self.error))
        m.d.comb += [seq.i_valid.eq(self.i_instr.valid), seq.is_kv.eq(self.i_is_kv),
                     seq.pop.eq(word[5] if load else word[4]),     # pop_next / pop_prev
                     seq.pc.eq(pc), seq.halt.eq(self.halt), seq.unit_busy.eq(self.unit_busy),
                     seq.token_available.eq(self.token_available),
                     self.waiting.eq(seq.waiting),
                     reader.start.eq(seq.rd_start), reader.addr.eq(seq.rd_addr),
                     reader.count.eq(seq.rd_count), reader.flush.eq(seq.rd_flush),
                     seq.reader_busy.eq(reader.busy),
                     checks.step.eq(seq.check_step), checks.word_bad.eq(seq.word_bad),
                     checks.word_code.eq(seq.word_code), sub.step.eq(seq.sub_step),
                     seq.last_head.eq(sub.last_head), seq.last_seg.eq(sub.last_seg)]
        for name in ("chk_bad", "chk_code", "desc", "lo", "n_pages", "n_pages_one",
                     "page_mask"):
            m.d.comb += getattr(seq, name).eq(getattr(checks, name))
        stop, stop_now = seq.stop, seq.stop_now

        table_word = reader.o_word.payload.word
        # The sub-instructions' segment step comes a cycle after its word is taken; the word
        # is kept meanwhile (loaded every cycle: no enable).
        table_word_q = Signal(32)
        m.d.sync += table_word_q.eq(table_word)
        # The geometry register, copied here while the controller waits for a KV instruction
        # (regs_open), so its shifts and decodes start from a local flip-flop; the enable is
        # the controller's own, so the two controllers' copies are not merged into one.
        geometry = Signal(GEOMETRY)
        with m.If(seq.regs_open):
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

        # Instructions for the unit pass a registered stage, so that the unit's ready logic
        # ends there (o_instr below is the stage's input; its output stops on halt). The
        # store unit's ready is low on halt already, so in front of it the halt is left out
        # of the stage's ready (which enables its output register). The controller sends on
        # credits (can_send, a flip-flop): the flip-flops that say whether the stage has room
        # also enable its ~300 holding flip-flops, and so do not drive the handshakes
        # below. The stage runs at half rate (its output register loads only while empty),
        # so the unit's ready enables no wide register: the unit takes an instruction at most
        # every other cycle anyway.
        m.submodules.out_stage = stage = CreditStage(self.o_instr.payload.shape(),
                                                     half_rate=True)
        m.d.comb += [self.o_instr.valid.eq(stage.o_stream.valid & ~stop_now),
                     self.o_instr.payload.eq(stage.o_stream.payload),
                     stage.o_stream.ready.eq(self.o_instr.ready & (~stop_now if load else 1)),
                     seq.stage_busy.eq(stage.busy)]
        sender = CreditSender("out")
        can_send = sender.can_send
        o_instr = stage.i_stream
        out = Signal(256)
        m.d.comb += [o_instr.payload.word.eq(out), o_instr.payload.pc.eq(pc)]
        last_head = sub.last_head
        m.d.comb += out.eq(sub.sub_instr)

        # The stage's input is driven by the two states' flags, flip-flops beside the
        # sequencer's FSM, so the pass-through and hand-over handshakes, the stage's input
        # multiplexer and the queue's ready do not wait for the decode of the FSM's state:
        # ``idle_go`` (IDLE and not halted) and ``in_hand`` (HAND).
        idle_go, in_hand = seq.idle_go, seq.in_hand
        is_kv = self.i_is_kv
        pass_valid = idle_go & ~is_kv & self.i_instr.valid
        # A KV instruction leaves the queue once it is done (pop_kv, in DONE).
        pop_kv = seq.pop_kv
        # Sub-instructions are handed over at most every other cycle: the head's registers
        # move on the cycle after a hand-over (sub_step.hand), so their enables come from
        # flip-flops; sub_instr is not yet the next head's in that cycle.
        hand_valid = Signal()
        hand_ok = in_hand & ~stop & ~seq.sub_step.hand
        if load:
            hand_ok &= ~(last_head & sub.advance_busy)
        m.d.comb += hand_valid.eq(hand_ok)
        hand_fire = hand_valid & can_send
        send = Signal()
        m.d.comb += [
            send.eq((pass_valid | hand_valid) & can_send),
            o_instr.valid.eq(send),
            self.i_instr.ready.eq((idle_go & ~is_kv & can_send) | pop_kv),
            seq.hand_fire.eq(hand_fire),
        ]
        sender.count(m, send, o_instr.freed)
        with m.If(~in_hand):
            m.d.comb += out.eq(self.i_instr.payload.word)

        m.d.comb += [
            self.busy.eq(seq.working | reader.busy | stage.busy),
            self.blocked.eq((in_hand & ~can_send) | stage.busy | seq.reporting),
        ]
        return m
