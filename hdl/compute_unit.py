"""Compute unit: executes GEMM instructions on the systolic array into the accumulator.

Per instruction: wait for the tokens it pops (load->compute, store->compute), check that every
scratchpad and accumulator row it touches exists, then hand the instruction to three loop
engines that run concurrently and stay in step through the array's streams:

* the weight feeder reads each tile's R weight rows (n-tile outer, k-tile inner) into the
  array's ``w_stream``; the array double-buffers, so the next tile loads during this one;
* the activation feeder reads the tile's ``m`` input rows into ``a_stream``;
* the result writer takes each output row and writes (or, for ``accumulate`` and every
  k-tile after the first, adds into) the accumulator row; after the instruction's last row it
  pushes the tokens the instruction promised.

The next instruction's feeds start while the current one is still in the array.

Tested against the golden ISA simulator by the accelerator tests.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import LAYOUTS, ErrorCode, Opcode

from .spad_reader import SpadReader
from .systolic_array import SystolicArray
from .unit_ports import ErrorReport, InstructionStream, MemRead, MemWrite

__all__ = ["ComputeUnit"]

GEMM = LAYOUTS[Opcode.GEMM]


class _TileLoops:
    """Counters for (nt, kt, inner) with running addresses; ``step`` advances one inner step."""

    def __init__(self, m, name, ins, inner_count):
        self.nt = Signal(12, name=f"{name}_nt")
        self.kt = Signal(12, name=f"{name}_kt")
        self.i = Signal(16, name=f"{name}_i")
        self.inner_count = inner_count
        self.last_i = self.i == inner_count - 1
        self.last_kt = self.kt == ins.k_tiles - 1
        self.last_nt = self.nt == ins.n_tiles - 1
        self.done = self.last_i & self.last_kt & self.last_nt
        self._m = m

    def reset(self):
        return [self.nt.eq(0), self.kt.eq(0), self.i.eq(0)]

    def advance(self):
        m = self._m
        with m.If(self.last_i):
            m.d.sync += self.i.eq(0)
            with m.If(self.last_kt):
                m.d.sync += [self.kt.eq(0), self.nt.eq(self.nt + 1)]
            with m.Else():
                m.d.sync += self.kt.eq(self.kt + 1)
        with m.Else():
            m.d.sync += self.i.eq(self.i + 1)


class ComputeUnit(wiring.Component):
    """The accelerator's compute unit.

    Parameters
    ----------
    config : AcceleratorConfig

    Ports
    -----
    i_instr : In(InstructionStream())
    prev_available, next_available : In(1)
        Tokens queued from the load unit and from the store unit.
    pop_prev, pop_next, push_prev, push_next : Out(1)
        Token handshakes.
    halt : In(1)
    error : Out(ErrorReport())
    input_r : Out(MemRead(8R, input_rows)), weight_r : Out(MemRead(8C, weight_rows))
    acc_r : Out(MemRead(32C, acc_rows))
        Read port for read-modify-write; must be transparent to ``acc_w``.
    acc_w : Out(MemWrite(32C, acc_rows))
    computing : Out(1)
        An activation row entered the array this cycle.
    busy, waiting : Out(1)
    pc : Out(32)
        Address of the instruction being executed or waited for.
    """

    def __init__(self, config: AcceleratorConfig):
        self._cfg = config
        R, C = config.rows, config.cols
        super().__init__({
            "i_instr": In(InstructionStream()),
            "prev_available": In(1), "next_available": In(1),
            "pop_prev": Out(1), "pop_next": Out(1), "push_prev": Out(1), "push_next": Out(1),
            "halt": In(1), "error": Out(ErrorReport()),
            "input_r": Out(MemRead(8 * R, config.input_rows)),
            "weight_r": Out(MemRead(8 * C, config.weight_rows)),
            "acc_r": Out(MemRead(32 * C, config.acc_rows)),
            "acc_w": Out(MemWrite(32 * C, config.acc_rows)),
            "computing": Out(1), "busy": Out(1), "waiting": Out(1), "pc": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        R, C = cfg.rows, cfg.cols
        word = Signal(256)
        pc = Signal(32)
        m.d.comb += self.pc.eq(pc)
        ins = GEMM(word)
        hdr = ins.header

        m.submodules.array = array = SystolicArray(R, C)
        m.d.comb += self.computing.eq(array.computing)
        queues = {}
        for name in ("weights", "acts", "results"):
            q = fifo.SyncFIFOBuffered(width=256 + 32, depth=2)
            m.submodules[f"{name}_q"] = queues[name] = q
        halted = Signal()
        err_code = Signal(ErrorCode)
        m.d.comb += [self.error.valid.eq(halted), self.error.code.eq(err_code)]
        stop = self.halt | halted

        def fail(code):
            m.d.sync += [err_code.eq(code), self.error.pc.eq(pc), halted.eq(1)]
            m.next = "HALT"

        max_in = Signal(48)
        max_w = Signal(48)
        max_acc = Signal(48)
        all_room = queues["weights"].w_rdy & queues["acts"].w_rdy & queues["results"].w_rdy
        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.i_instr.ready.eq(~stop)
                with m.If(self.i_instr.valid & ~stop):
                    m.d.sync += [word.eq(self.i_instr.payload.word),
                                 pc.eq(self.i_instr.payload.pc)]
                    m.next = "TOKEN"
            with m.State("TOKEN"):
                ok = (~hdr.pop_prev | self.prev_available) & (~hdr.pop_next |
                                                               self.next_available)
                m.d.comb += self.waiting.eq(~ok & ~self._engines_busy(m, queues, array))
                with m.If(stop):
                    m.next = "HALT"
                with m.Elif(ok):
                    m.d.comb += [self.pop_prev.eq(hdr.pop_prev), self.pop_next.eq(hdr.pop_next)]
                    m.next = "CHECK0"
            with m.State("CHECK0"):
                m.d.sync += [
                    max_in.eq(ins.a_addr + (ins.k_tiles - 1) * ins.a_k_step +
                              (ins.m - 1) * ins.a_stride),
                    max_w.eq(ins.w_addr + (ins.k_tiles - 1) * ins.w_k_step +
                             (ins.n_tiles - 1) * ins.w_n_step + (R - 1) * ins.w_stride),
                    max_acc.eq(ins.acc_addr + (ins.n_tiles - 1) * ins.acc_n_step + ins.m - 1),
                ]
                with m.If((ins.m == 0) | (ins.k_tiles == 0) | (ins.n_tiles == 0)):
                    fail(ErrorCode.MALFORMED)
                with m.Else():
                    m.next = "CHECK1"
            with m.State("CHECK1"):
                with m.If((max_in >= cfg.input_rows) | (max_w >= cfg.weight_rows) |
                          (max_acc >= cfg.acc_rows)):
                    fail(ErrorCode.SPAD_RANGE)
                with m.Elif(all_room):
                    for q in queues.values():
                        m.d.comb += [q.w_data.eq(word | (pc << 256)), q.w_en.eq(1)]
                    m.next = "IDLE"
            with m.State("HALT"):
                pass

        # A descriptor just pushed is not yet visible at the queue's output: count it busy.
        self._queued = Cat(*((q.level != 0) | q.r_rdy for q in queues.values())).any()
        self._weight_feeder(m, queues["weights"], array, stop)
        self._act_feeder(m, queues["acts"], array, stop)
        self._result_writer(m, queues["results"], array, stop)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("HALT") |
                                 self._engines_busy(m, queues, array))
        return m

    def _engines_busy(self, m, queues, array):
        if not hasattr(self, "_busy_sig"):
            self._busy_sig = Signal(name="engines_busy")
        return self._busy_sig

    def _feeder(self, m, name, queue, reader, addr_of, inner_count_of, last_of, stop):
        """Common loop engine: walk (nt, kt, i) of the head instruction, reading rows."""
        word = Signal(256, name=f"{name}_word")
        ins = GEMM(word)
        active = Signal(name=f"{name}_active")
        loops = _TileLoops(m, name, ins, inner_count_of(ins))
        addr = addr_of(ins, loops)
        m.d.comb += queue.r_en.eq(~active)
        with m.If(queue.r_rdy & ~active):
            m.d.sync += [word.eq(queue.r_data[:256]), active.eq(1), *loops.reset()]
        m.d.comb += [reader.i_addr.valid.eq(active & ~stop),
                     reader.i_addr.payload.addr.eq(addr),
                     reader.i_addr.payload.last.eq(last_of(loops))]
        with m.If(reader.i_addr.valid & reader.i_addr.ready):
            loops.advance()
            with m.If(loops.done):
                m.d.sync += active.eq(0)
        with m.If(stop):
            m.d.sync += active.eq(0)
        return active

    def _weight_feeder(self, m, queue, array, stop):
        R, cfg = self._cfg.rows, self._cfg
        m.submodules.weight_reader = reader = SpadReader(8 * cfg.cols, cfg.weight_rows)
        wiring.connect(m, reader.mem, wiring.flipped(self.weight_r))

        def addr_of(ins, lp):
            return (ins.w_addr + lp.kt * ins.w_k_step + lp.nt * ins.w_n_step +
                    lp.i * ins.w_stride)[:16]
        self._w_active = self._feeder(m, "wfeed", queue, reader, addr_of, lambda ins: R,
                                      lambda lp: lp.last_i, stop)
        m.d.comb += [array.w_stream.valid.eq(reader.o_row.valid),
                     array.w_stream.payload.eq(reader.o_row.payload.data),
                     reader.o_row.ready.eq(array.w_stream.ready)]
        self._w_reader = reader

    def _act_feeder(self, m, queue, array, stop):
        cfg = self._cfg
        m.submodules.act_reader = reader = SpadReader(8 * cfg.rows, cfg.input_rows)
        wiring.connect(m, reader.mem, wiring.flipped(self.input_r))

        def addr_of(ins, lp):
            return (ins.a_addr + lp.kt * ins.a_k_step + lp.i * ins.a_stride)[:16]
        self._a_active = self._feeder(m, "afeed", queue, reader, addr_of, lambda ins: ins.m,
                                      lambda lp: lp.last_i, stop)
        m.d.comb += [array.a_stream.valid.eq(reader.o_row.valid),
                     array.a_stream.payload.data.eq(reader.o_row.payload.data),
                     array.a_stream.payload.last.eq(reader.o_row.payload.last),
                     reader.o_row.ready.eq(array.a_stream.ready)]
        self._a_reader = reader

    def _result_writer(self, m, queue, array, stop):
        cfg = self._cfg
        word = Signal(256, name="res_word")
        ins = GEMM(word)
        active = Signal(name="res_active")
        loops = _TileLoops(m, "res", ins, ins.m)
        m.d.comb += queue.r_en.eq(~active)
        with m.If(queue.r_rdy & ~active):
            m.d.sync += [word.eq(queue.r_data[:256]), active.eq(1), *loops.reset()]

        # Stage 0: address the accumulator row; stage 1: add and write.
        out = array.o_stream
        m.d.comb += out.ready.eq(active)
        take = out.valid & active
        s1_valid = Signal()
        s1_acc = Signal()
        s1_addr = Signal(range(cfg.acc_rows))
        s1_data = Signal(32 * cfg.cols)
        s1_push_prev = Signal()
        s1_push_next = Signal()
        addr = (ins.acc_addr + loops.nt * ins.acc_n_step + loops.i)[:16]
        m.d.comb += [self.acc_r.addr.eq(addr), self.acc_r.en.eq(take)]
        m.d.sync += [s1_valid.eq(take), s1_addr.eq(addr),
                     s1_acc.eq(ins.accumulate | (loops.kt != 0)),
                     s1_data.eq(out.payload.data.as_value()),
                     s1_push_prev.eq(take & loops.done & ins.header.push_prev),
                     s1_push_next.eq(take & loops.done & ins.header.push_next)]
        with m.If(take):
            loops.advance()
            with m.If(loops.done):
                m.d.sync += active.eq(0)
        with m.If(stop):
            m.d.sync += active.eq(0)
        total = []
        for j in range(cfg.cols):
            old = self.acc_r.data[32 * j:32 * j + 32]
            new = s1_data[32 * j:32 * j + 32]
            total.append(Mux(s1_acc, old + new, new)[:32])
        m.d.comb += [self.acc_w.addr.eq(s1_addr), self.acc_w.data.eq(Cat(*total)),
                     self.acc_w.en.eq(s1_valid & ~self.halt & ~self.error.valid),
                     self.push_prev.eq(s1_push_prev & s1_valid),
                     self.push_next.eq(s1_push_next & s1_valid)]
        m.d.comb += self._engines_busy(m, None, array).eq(
            self._w_active | self._a_active | active | s1_valid | self._w_reader.busy |
            self._a_reader.busy | array.busy | self._queued)
