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

The next instruction's feeds start while the current one is still in the array. Addresses
come from :class:`~octet.hdl.tile_loops.TileLoops` (running sums, no multipliers); the range
check is spread over five cycles (decrement, multiply, add, compare, decide) so that no cycle
holds more than one multiplier or adder; the result writer reads, registers, then adds and
writes each accumulator row, adding the sum of the row just ahead instead of the row read when
it is the same row.

Tested against the golden ISA simulator by the accelerator tests (``tests/test_accelerator_rtl``,
``tests/test_kv_rtl``) and, for the loop engine, ``tests/test_tile_loops.py``.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import LAYOUTS, ErrorCode, Opcode

from .spad_reader import SpadReader
from .systolic_array import SystolicArray
from .tile_loops import TileLoops
from .unit_ports import ErrorReport, InstructionStream, MemRead, MemWrite

__all__ = ["ComputeUnit"]

GEMM = LAYOUTS[Opcode.GEMM]


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
        An activation row entered the array in the previous cycle.
    busy, waiting : Out(1)
    pc : Out(32)
        Address of the instruction being executed or waited for (while idle, of the one
        offered on ``i_instr``).
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
        halt_seen = Signal()
        m.d.sync += halt_seen.eq(stop)

        def fail(code):
            m.d.sync += [err_code.eq(code), self.error.pc.eq(pc), halted.eq(1)]
            m.next = "HALT"

        all_room = queues["weights"].w_rdy & queues["acts"].w_rdy & queues["results"].w_rdy
        # The range check takes one step per cycle (decrements, products, sums, comparisons)
        # so that no cycle holds more than one multiplier or adder level.
        less = {name: Signal(bits, name=f"chk_{name}_m1")
                for name, bits in (("m", 16), ("k", 12), ("n", 12))}
        prods = {name: Signal(32, name=f"chk_{name}")
                 for name in ("a_k", "a_m", "w_k", "w_n", "w_r", "acc_n")}
        max_in, max_w, max_acc = (Signal(34, name=f"max_{n}") for n in ("in", "w", "acc"))
        out_of_range = Signal()
        empty = Signal()                  # m, k_tiles or n_tiles is 0 (MALFORMED)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                # A halt is seen one cycle late here (an instruction taken meanwhile stops in
                # TOKEN), so that the accelerator's error OR does not reach the fetch queue.
                m.d.comb += self.i_instr.ready.eq(~halt_seen)
                # The word and pc follow the queue's output while idle (they are used from
                # TOKEN on), so their ~290 enables are the state alone, not the handshake:
                # the fourteenth timing round's seed-2 worst path ran from the queue's valid
                # through the state logic to the pc's flip-flops, 19 columns away.
                m.d.sync += [word.eq(self.i_instr.payload.word), pc.eq(self.i_instr.payload.pc)]
                with m.If(self.i_instr.valid & ~halt_seen):
                    m.next = "TOKEN"
            with m.State("TOKEN"):
                ok = (~hdr.pop_prev | self.prev_available) & (~hdr.pop_next |
                                                               self.next_available)
                m.d.comb += self.waiting.eq(~ok & ~self._engines_busy(m, queues, array))
                # The halt from a register here too (halt_seen), so that the accelerator's
                # error OR does not reach the token counters; CHECK0 stops on it.
                with m.If(halt_seen | halted):
                    m.next = "HALT"
                with m.Elif(ok):
                    m.d.comb += [self.pop_prev.eq(hdr.pop_prev), self.pop_next.eq(hdr.pop_next)]
                    m.next = "CHECK0"
            with m.State("CHECK0"):
                with m.If(stop):
                    m.next = "HALT"
                with m.Else():
                    m.next = "CHECK1"
                m.d.sync += [less["m"].eq(ins.m - 1), less["k"].eq(ins.k_tiles - 1),
                             less["n"].eq(ins.n_tiles - 1),
                             empty.eq((ins.m == 0) | (ins.k_tiles == 0) | (ins.n_tiles == 0))]
            with m.State("CHECK1"):
                # (The products of CHECK1 are only used when the instruction is not empty.)
                with m.If(empty):
                    fail(ErrorCode.MALFORMED)
                with m.Else():
                    m.next = "CHECK2"
                m.d.sync += [prods["a_k"].eq(less["k"] * ins.a_k_step),
                             prods["a_m"].eq(less["m"] * ins.a_stride),
                             prods["w_k"].eq(less["k"] * ins.w_k_step),
                             prods["w_n"].eq(less["n"] * ins.w_n_step),
                             prods["w_r"].eq((R - 1) * ins.w_stride),
                             prods["acc_n"].eq(less["n"] * ins.acc_n_step)]
            with m.State("CHECK2"):
                m.d.sync += [
                    max_in.eq(ins.a_addr + prods["a_k"] + prods["a_m"]),
                    max_w.eq((ins.w_addr + prods["w_k"]) + (prods["w_n"] + prods["w_r"])),
                    max_acc.eq(ins.acc_addr + prods["acc_n"] + less["m"]),
                ]
                m.next = "CHECK3"
            with m.State("CHECK3"):
                m.d.sync += out_of_range.eq((max_in >= cfg.input_rows) |
                                            (max_w >= cfg.weight_rows) |
                                            (max_acc >= cfg.acc_rows))
                m.next = "CHECK4"
            with m.State("CHECK4"):
                with m.If(out_of_range):
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

    def _loop_engine(self, m, name, queue, setup):
        """A loop engine's descriptor register and tile walk; returns (ins, active, loops).

        The descriptor at the head of ``queue`` is taken when the engine is idle; ``setup``
        connects the walk's counts and base (from the queue's output, sampled at the start)
        and its steps (from the taken descriptor, held while the walk runs).
        """
        word = Signal(256, name=f"{name}_word")
        ins = GEMM(word)
        active = Signal(name=f"{name}_active")
        m.submodules[f"{name}_loops"] = loops = TileLoops()
        start = queue.r_rdy & ~active
        m.d.comb += [queue.r_en.eq(~active), loops.start.eq(start),
                     *setup(loops, GEMM(queue.r_data[:256]), ins)]
        with m.If(start):
            m.d.sync += [word.eq(queue.r_data[:256]), active.eq(1)]
        return ins, active, loops

    def _feeder(self, m, name, queue, reader, setup, stop):
        """Weight or activation feeder: walk the head instruction's tiles, reading rows.

        Reads have no side effects, so the feeder stops one cycle after ``stop`` (from a
        register): the accelerator's error OR does not reach the loop counters.
        """
        _, active, loops = self._loop_engine(m, name, queue, setup)
        stopped = Signal(name=f"{name}_stopped")
        m.d.sync += stopped.eq(stop)
        m.d.comb += [reader.i_addr.valid.eq(active & ~stopped),
                     reader.i_addr.payload.addr.eq(loops.addr),
                     reader.i_addr.payload.last.eq(loops.last_i),
                     loops.advance.eq(reader.i_addr.valid & reader.i_addr.ready)]
        with m.If(loops.advance & loops.done):
            m.d.sync += active.eq(0)
        with m.If(stop):
            m.d.sync += active.eq(0)
        return active

    def _weight_feeder(self, m, queue, array, stop):
        R, cfg = self._cfg.rows, self._cfg
        m.submodules.weight_reader = reader = SpadReader(8 * cfg.cols, cfg.weight_rows)
        wiring.connect(m, reader.mem, wiring.flipped(self.weight_r))

        def setup(loops, head, ins):
            return [loops.base.eq(head.w_addr), loops.inner.eq(R),
                    loops.k_tiles.eq(head.k_tiles), loops.n_tiles.eq(head.n_tiles),
                    loops.i_step.eq(ins.w_stride), loops.k_step.eq(ins.w_k_step),
                    loops.n_step.eq(ins.w_n_step)]
        self._w_active = self._feeder(m, "wfeed", queue, reader, setup, stop)
        m.d.comb += [array.w_stream.valid.eq(reader.o_row.valid),
                     array.w_stream.payload.eq(reader.o_row.payload.data),
                     reader.o_row.ready.eq(array.w_stream.ready)]
        self._w_reader = reader

    def _act_feeder(self, m, queue, array, stop):
        cfg = self._cfg
        m.submodules.act_reader = reader = SpadReader(8 * cfg.rows, cfg.input_rows)
        wiring.connect(m, reader.mem, wiring.flipped(self.input_r))

        def setup(loops, head, ins):
            # The same activation rows for every n-tile.
            return [loops.base.eq(head.a_addr), loops.inner.eq(head.m),
                    loops.k_tiles.eq(head.k_tiles), loops.n_tiles.eq(head.n_tiles),
                    loops.i_step.eq(ins.a_stride), loops.k_step.eq(ins.a_k_step),
                    loops.n_step.eq(0)]
        self._a_active = self._feeder(m, "afeed", queue, reader, setup, stop)
        m.d.comb += [array.a_stream.valid.eq(reader.o_row.valid),
                     array.a_stream.payload.data.eq(reader.o_row.payload.data),
                     array.a_stream.payload.last.eq(reader.o_row.payload.last),
                     reader.o_row.ready.eq(array.a_stream.ready)]
        self._a_reader = reader

    def _result_writer(self, m, queue, array, stop):
        cfg = self._cfg

        def setup(loops, head, ins):
            # Every k-tile of an n-tile adds into the same m accumulator rows.
            return [loops.base.eq(head.acc_addr), loops.inner.eq(head.m),
                    loops.k_tiles.eq(head.k_tiles), loops.n_tiles.eq(head.n_tiles),
                    loops.i_step.eq(1), loops.k_step.eq(0),
                    loops.n_step.eq(ins.acc_n_step)]
        ins, active, loops = self._loop_engine(m, "res", queue, setup)

        # Stage 0: read the accumulator row. Stage 1: the row arrives; register it as read.
        # Stage 2: add and write. The read in stage 0 sees writes up to the same cycle (the
        # read port is transparent), so only the result one step ahead, written while this
        # one is in stage 1, is forwarded: stage 2 adds the previous cycle's sum (registered)
        # instead of the row read. The choice is made in stage 2 so that the memory's data
        # goes straight into a register.
        out = array.o_stream
        m.d.comb += out.ready.eq(active)
        take = out.valid & active
        m.d.comb += loops.advance.eq(take)
        s1 = {"valid": Signal(name="s1_valid"), "acc": Signal(name="s1_acc"),
              "addr": Signal(range(cfg.acc_rows), name="s1_addr"),
              "data": Signal(32 * cfg.cols, name="s1_data"),
              "push_prev": Signal(name="s1_push_prev"), "push_next": Signal(name="s1_push_next")}
        s2 = {key: Signal.like(sig, name=f"s2_{key}") for key, sig in s1.items() if key != "acc"}
        s1_forward = Signal()   # stage 2 writes s1's row in the cycle s1's read arrives
        s2_read = Signal(32 * cfg.cols)    # the accumulator row as read
        s2_prev = Signal(32 * cfg.cols)    # the sum computed (and written) in the last cycle
        s2_add_read = Signal()             # accumulate onto s2_read
        s2_add_prev = Signal()             # accumulate onto s2_prev (forwarded)
        # The read port is always enabled (its data is only used in the cycle after ``take``), so
        # the array's handshake does not fan out to the read port's capture flip-flops.
        m.d.comb += [self.acc_r.addr.eq(loops.addr), self.acc_r.en.eq(1)]
        m.d.sync += [s1["valid"].eq(take), s1["addr"].eq(loops.addr),
                     s1["acc"].eq(ins.accumulate | ~loops.first_kt),
                     s1["data"].eq(out.payload.data.as_value()),
                     s1["push_prev"].eq(take & loops.done & ins.header.push_prev),
                     s1["push_next"].eq(take & loops.done & ins.header.push_next),
                     s1_forward.eq(s1["valid"] & (s1["addr"] == loops.addr))]
        m.d.sync += [s2[key].eq(s1[key]) for key in s2]
        m.d.sync += [s2_read.eq(self.acc_r.data), s2_add_read.eq(s1["acc"] & ~s1_forward),
                     s2_add_prev.eq(s1["acc"] & s1_forward)]
        with m.If(take & loops.done):
            m.d.sync += active.eq(0)
        with m.If(stop):
            m.d.sync += active.eq(0)
        total = []
        for j in range(cfg.cols):
            col = slice(32 * j, 32 * j + 32)
            # One gate level per bit in front of the adder: at most one of the two is set.
            old = (Mux(s2_add_read, s2_read[col], 0) | Mux(s2_add_prev, s2_prev[col], 0))
            total.append((old + s2["data"][col])[:32])
        m.d.sync += s2_prev.eq(Cat(*total))
        m.d.comb += [self.acc_w.addr.eq(s2["addr"]), self.acc_w.data.eq(Cat(*total)),
                     self.acc_w.en.eq(s2["valid"] & ~self.halt & ~self.error.valid),
                     self.push_prev.eq(s2["push_prev"] & s2["valid"]),
                     self.push_next.eq(s2["push_next"] & s2["valid"])]
        m.d.comb += self._engines_busy(m, None, array).eq(
            self._w_active | self._a_active | active | s1["valid"] | s2["valid"] |
            self._w_reader.busy | self._a_reader.busy | array.busy | self._queued)
