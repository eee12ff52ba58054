"""The Octet accelerator: AXI4 master for device memory, AXI4-Lite registers, four units.

Block diagram::

    s_axil -> CsrBank (octet.isa.Reg) --start--> FetchUnit --queues--> KvController -> LoadUnit -+
                                                                    -> ComputeUnit              |
    m_axi  <- AxiReader (fetch, load, store-params, KV tables;  KvController -> StoreUnit       |
           <- AxiWriter (store)   round robin, in order)           ^-- accumulator <------------+

The two KV-cache controllers (``hdl/kv_controller.py``) pass ordinary instructions straight
through and translate KV_LOAD / KV_APPEND into LOADs / STOREs of the sequence's pages.

Scratchpads: input (R int8 per row), weight (C int8 per row) and the int32 accumulator (C per
row), all ``lib.memory.Memory``. The units run concurrently and synchronise through four
token queues (``octet.hdl.token_queue``). The first unit error stops every unit (the others
a cycle later: the halt comes from a flip-flop); bus transfers already started complete, then
STATUS shows DONE|ERROR with the code and the faulting instruction's address. A state in which every unit waits for a token nobody can
produce is reported as DEADLOCK, so the accelerator never hangs.

Tested by ``tests/test_accelerator_rtl.py`` (cocotb + Verilator against
``octet.sim.isa_sim``, random programs, random AXI latency and backpressure, errors).
"""

from amaranth.hdl import Cat, DomainRenamer, Module, Mux, ResetInserter, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import ID_MAGIC, VERSION, ErrorCode, Opcode, Reg, Status

from .axi import AxiLiteSignature, AxiSignature, connect_read_write
from .axi_reader import AxiReader
from .axi_writer import AxiWriter
from .axil_csr import CsrBank
from .compute_unit import ComputeUnit
from .credit_stage import CreditStage
from .fetch_unit import FetchUnit
from .global_buffer import GlobalBuffer
from .kv_controller import KvController
from .load_unit import LoadUnit
from .read_arbiter import connect_reads
from .skid_buffer import SkidBuffer
from .store_unit import StoreUnit
from .token_queue import TokenQueue

__all__ = ["Accelerator"]

_COUNTERS = ["CYCLES", "COMPUTE_CYCLES", "DMA_BUSY_CYCLES", "DMA_STALL_CYCLES", "BYTES_READ",
             "BYTES_WRITTEN", "INSTRUCTIONS"]
_DEADLOCK_CYCLES = 8


def _or_all(values):
    """The OR of ``values`` as a balanced tree."""
    while len(values) > 1:
        values = [values[i] | values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def _registers(config):
    regs = [("id", Reg.ID, "ro"), ("version", Reg.VERSION, "ro"),
            ("config0", Reg.CONFIG0, "ro"), ("config1", Reg.CONFIG1, "ro"),
            ("config2", Reg.CONFIG2, "ro"),
            ("ctrl", Reg.CTRL, "wo"), ("status", Reg.STATUS, "ro"),
            ("fault_pc", Reg.FAULT_PC, "ro"), ("prog_base", Reg.PROG_BASE, "rw", 0),
            ("mem_limit", Reg.MEM_LIMIT, "rw", config.mem_bytes), ("pc", Reg.PC, "ro"),
            ("irq", Reg.IRQ, "w1c"), ("kv_seq_table", Reg.KV_SEQ_TABLE, "rw", 0),
            ("kv_seq_count", Reg.KV_SEQ_COUNT, "rw", 0),
            ("kv_pool_base", Reg.KV_POOL_BASE, "rw", 0),
            ("kv_geometry", Reg.KV_GEOMETRY, "rw", 0)]
    for name in _COUNTERS:
        regs += [(f"{name.lower()}_lo", Reg[name], "ro"),
                 (f"{name.lower()}_hi", Reg[name] + 4, "ro")]
    return regs


class Accelerator(wiring.Component):
    """Top level of the generated accelerator.

    Parameters
    ----------
    config : AcceleratorConfig
    unit_domain : str
        Clock domain of the units (fetch, load, compute, store, KV controllers, token queues),
        default ``"sync"``. Their flip-flops are reset by ``start`` and by the ``sync`` domain's
        reset through one register and a :class:`~octet.hdl.global_buffer.GlobalBuffer`. A board
        passes a reset-less domain on the same clock here (``BoardTop``), so that this buffered
        net is the units' only reset and reaches them over the FPGA's global network.

    Ports
    -----
    m_axi : Out(AxiSignature(32, 8 * bus_bytes, 4))
        Device memory.
    s_axil : In(AxiLiteSignature(8, 32))
        Control and status registers (``octet.isa.Reg``).
    irq : Out(1)
        Level interrupt: a program finished while ``Ctrl.IRQ_ENABLE`` was set; cleared by
        writing 1 to ``IRQ``.
    """

    def __init__(self, config=None, *, unit_domain="sync"):
        config = config or AcceleratorConfig()
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"Accelerator config must be an AcceleratorConfig, not {config!r}")
        if not isinstance(unit_domain, str) or not unit_domain:
            raise TypeError(f"Accelerator unit domain must be a domain name, not {unit_domain!r}")
        self._cfg = config
        self._unit_domain = unit_domain
        super().__init__({
            "m_axi": Out(AxiSignature(32, config.bus_bits, 4)),
            "s_axil": In(AxiLiteSignature(8, 32)),
            "irq": Out(1),
        })

    @property
    def config(self):
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        B, R, C = cfg.bus_bytes, cfg.rows, cfg.cols

        m.submodules.csr = csr = CsrBank(_registers(cfg), addr_width=8)
        wiring.connect(m, wiring.flipped(self.s_axil), csr.bus)
        reg = lambda name, kind: getattr(csr, f"{name}_{kind}")  # noqa: E731

        start = Signal()
        running = Signal()
        # The units' reset: its own flip-flop, loaded like ``start`` and also high through the
        # domain's reset (its init value is 1), then a global buffer (a wire off FPGAs).
        unit_reset = Signal(init=1)
        m.submodules.unit_reset_buffer = reset_buffer = GlobalBuffer()
        m.d.comb += reset_buffer.i.eq(unit_reset)

        def unit(name, component):
            wrapped = ResetInserter(reset_buffer.o)(component)
            if self._unit_domain != "sync":
                wrapped = DomainRenamer(self._unit_domain)(wrapped)
            m.submodules[name] = wrapped
            return component

        fetch = unit("fetch", FetchUnit(B))
        load = unit("load", LoadUnit(cfg))
        compute = unit("compute", ComputeUnit(cfg))
        store = unit("store", StoreUnit(cfg))
        kv_load = unit("kv_load", KvController(cfg, Opcode.KV_LOAD))
        kv_store = unit("kv_store", KvController(cfg, Opcode.KV_APPEND))
        tokens = {name: unit(f"tokens_{name}", TokenQueue())
                  for name in ("l2c", "c2l", "c2s", "s2c")}

        m.submodules.reader = reader = AxiReader(32, cfg.bus_bits, 8, tag_width=3)
        m.submodules.writer = writer = AxiWriter(32, cfg.bus_bits, 8)
        connect_read_write(m, self.m_axi, reader.m_axi, writer.m_axi)

        # Memories.
        m.submodules.input_spad = input_spad = memory.Memory(
            shape=8 * R, depth=cfg.input_rows, init=[])
        m.submodules.weight_spad = weight_spad = memory.Memory(
            shape=8 * C, depth=cfg.weight_rows, init=[])
        m.submodules.acc = acc = memory.Memory(shape=32 * C, depth=cfg.acc_rows, init=[])
        for mem, w, readers in ((input_spad, load.input_w, [compute.input_r]),
                                (weight_spad, load.weight_w, [compute.weight_r])):
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(w.addr), wp.data.eq(w.data), wp.en.eq(w.en)]
            for r in readers:
                rp = mem.read_port()
                m.d.comb += [rp.addr.eq(r.addr), rp.en.eq(r.en), r.data.eq(rp.data)]
        acc_w = acc.write_port()
        m.d.comb += [acc_w.addr.eq(compute.acc_w.addr), acc_w.data.eq(compute.acc_w.data),
                     acc_w.en.eq(compute.acc_w.en)]
        for r, transparent in ((compute.acc_r, (acc_w,)), (store.acc_r, ())):
            rp = acc.read_port(transparent_for=transparent)
            m.d.comb += [rp.addr.eq(r.addr), rp.en.eq(r.en), r.data.eq(rp.data)]

        # Instruction queues (KV instructions through their controllers) and tokens.
        # The fetch unit's queues reach their units through registered stages, so a unit's
        # ``ready`` (its state and halt) does not run on into the fetch unit's queue and
        # decode registers across the chip, nor their ``valid`` into the unit's enables. The
        # queues send on credits (the stage returns one as a registered pulse per instruction
        # taken), so not even the stage's state reaches the queues' output enables.
        # They are reset with the units: after an error a stage may still hold an instruction
        # the halted fetch unit had passed on, which must not run at the next program's start.
        instr_stages = []
        for name, src, dst in (("load", fetch.o_load, kv_load.i_instr),
                               ("compute", fetch.o_compute, compute.i_instr),
                               ("store", fetch.o_store, kv_store.i_instr)):
            stage = unit(f"{name}_instr_stage", CreditStage(src.payload.shape()))
            wiring.connect(m, src, stage.i_stream)
            wiring.connect(m, stage.o_stream, dst)
            instr_stages.append(stage)
        wiring.connect(m, kv_load.o_instr, load.i_instr)
        wiring.connect(m, kv_store.o_instr, store.i_instr)
        for ctl, unit_, queue in ((kv_load, load, "c2l"), (kv_store, store, "c2s")):
            m.d.comb += [ctl.seq_table.eq(reg("kv_seq_table", "value")),
                         ctl.seq_count.eq(reg("kv_seq_count", "value")),
                         ctl.pool_base.eq(reg("kv_pool_base", "value")),
                         ctl.geometry.eq(reg("kv_geometry", "value")),
                         ctl.unit_busy.eq(unit_.busy),
                         ctl.token_available.eq(tokens[queue].available)]
        m.d.comb += [
            tokens["l2c"].push.eq(load.token_push), tokens["l2c"].pop.eq(compute.pop_prev),
            compute.prev_available.eq(tokens["l2c"].available),
            tokens["c2l"].push.eq(compute.push_prev), tokens["c2l"].pop.eq(load.token_pop),
            load.token_available.eq(tokens["c2l"].available),
            tokens["c2s"].push.eq(compute.push_next), tokens["c2s"].pop.eq(store.pop_prev),
            store.prev_available.eq(tokens["c2s"].available),
            tokens["s2c"].push.eq(store.push_prev), tokens["s2c"].pop.eq(compute.pop_next),
            compute.next_available.eq(tokens["s2c"].available),
        ]

        # Reads: fetch (tag 0), load (1), store parameters (2), KV controllers (3, 4).
        # The store unit's read data passes a register stage of its own: its ready comes from
        # the store's state machine, and would otherwise run into the shared data stage's
        # enables. (The other consumers' readies are constants or registers.)
        m.submodules.store_rdata_stage = rdata_stage = SkidBuffer(
            store.i_rdata.payload.shape())
        wiring.connect(m, rdata_stage.o_stream, store.i_rdata)
        read_pending = connect_reads(
            m, reader, [fetch.o_req, load.o_req, store.o_rreq, kv_load.o_req, kv_store.o_req],
            [fetch.i_data, load.i_data, rdata_stage.i_stream, kv_load.i_data, kv_store.i_data])
        # Writes: the store unit's request and data streams each pass a register stage, so its
        # logic ends there instead of running on through the writer onto the bus.
        m.submodules.write_req_stage = wreq_stage = SkidBuffer(writer.i_req.payload.shape())
        m.submodules.write_data_stage = wdata_stage = SkidBuffer(writer.i_data.payload.shape())
        wiring.connect(m, store.o_wreq, wreq_stage.i_stream)
        wiring.connect(m, wreq_stage.o_stream, writer.i_req)
        wiring.connect(m, store.o_wdata, wdata_stage.i_stream)
        wiring.connect(m, wdata_stage.o_stream, writer.i_data)
        wiring.connect(m, writer.o_done, store.i_wdone)
        # Something held in a stage keeps its side busy.
        read_busy = Signal()
        write_busy = Signal()
        m.d.comb += [read_busy.eq(reader.busy | read_pending | rdata_stage.busy),
                     write_busy.eq(writer.busy | wreq_stage.busy | wdata_stage.busy)]

        # Errors: the first one wins and halts everyone.
        units = [fetch, kv_load, load, compute, kv_store, store]
        any_error = Cat(*(u.error.valid for u in units)).any()
        overflow = Cat(*(t.overflow for t in tokens.values())).any()
        err_latched = Signal()
        err_code = Signal(ErrorCode)
        err_pc = Signal(32)
        deadlock = Signal()
        oldest_waiting = Signal(32)
        # The halt the units see comes from flip-flops (registered errors, one flag per
        # unit): it reaches every unit's stall/enable logic, so it must not start from the
        # units' own error logic. The other units stop a cycle later than the faulting one
        # (which stops itself at once); a token pushed in that cycle is consumed no earlier
        # than the next, when every unit is halted, and the first error still wins (below).
        # One sticky flag per unit, set by the *other* units' errors (a unit that fails has
        # halted itself): the units then register different signals, which Yosys cannot merge
        # into one flip-flop driving every unit's stop logic across the chip.
        # A token overflow or a deadlock (errors of no unit) sets every unit's flag directly,
        # in the cycle it latches the error, so the latched error itself does not fan out
        # to every unit.
        unit_names = ["fetch", "kv_load", "load", "compute", "kv_store", "store"]
        for name, u in zip(unit_names, units, strict=True):
            others = Cat(*(v.error.valid for v in units if v is not u)).any()
            halt_q = Signal(name=f"halt_{name}_q")
            m.d.sync += halt_q.eq((halt_q | others | (running & (overflow | deadlock))) &
                                  ~start)
            m.d.comb += u.halt.eq(halt_q)
        # MEM_LIMIT 0 stands for 2**32 (the whole 32-bit address space). Registered: the units
        # compare addresses against it, and it is written well before a program starts.
        mem_limit = Signal(33, init=cfg.mem_bytes)
        m.d.sync += mem_limit.eq(Mux(reg("mem_limit", "value") == 0, 1 << 32,
                                     reg("mem_limit", "value")))
        m.d.comb += [fetch.mem_limit.eq(mem_limit), load.mem_limit.eq(mem_limit),
                     store.mem_limit.eq(mem_limit), kv_load.mem_limit.eq(mem_limit),
                     kv_store.mem_limit.eq(mem_limit),
                     fetch.prog_base.eq(reg("prog_base", "value"))]
        # The units' reports are registered before the choice (they stay valid, and halt
        # above does not wait for them); a report of the cycle before goes ahead of an
        # overflow or deadlock of this cycle, so the first error still wins.
        reports = []
        for u in units:
            seen = Signal(name=f"{u.error.valid.name}_seen")
            code, pc = Signal(ErrorCode), Signal(32)
            m.d.sync += [seen.eq(u.error.valid & ~start), code.eq(u.error.code),
                         pc.eq(u.error.pc)]
            reports.append((seen, code, pc))
        # The choice is registered as a one-hot (lowest priority first: overflow, deadlock,
        # then the units, fetch highest) and the winner's code and pc are loaded a cycle
        # later from registers that hold them meanwhile (a halted unit's report does not
        # change; the overflow and deadlock pcs are copied for it), so the choice does not run
        # into a wide multiplexer. STATUS shows DONE no earlier than two cycles after the
        # error is latched, with the code and pc loaded by then.
        ovf_pc, dl_pc = Signal(32), Signal(32)
        m.d.sync += [ovf_pc.eq(fetch.pc), dl_pc.eq(oldest_waiting)]
        sources = [(overflow, ErrorCode.TOKEN_OVERFLOW, ovf_pc),
                   (deadlock, ErrorCode.DEADLOCK, dl_pc), *reversed(reports)]
        pick = Signal(len(sources))
        capture = Signal()
        m.d.sync += capture.eq(0)
        with m.If(running & ~err_latched & Cat(*(s_[0] for s_ in sources)).any()):
            m.d.sync += [err_latched.eq(1), capture.eq(1)]
            for i, (cond, _, _) in enumerate(sources):
                higher = Cat(*(s_[0] for s_ in sources[i + 1:]))
                m.d.sync += pick[i].eq(cond & ~higher.any() if len(higher) else cond)
        with m.If(capture):
            m.d.sync += [
                err_code.as_value().eq(_or_all([
                    Mux(pick[i], code.value if isinstance(code, ErrorCode) else code.as_value(), 0)
                    for i, (_, code, _) in enumerate(sources)])),
                err_pc.eq(_or_all([Mux(pick[i], pc, 0) for i, (_, _, pc) in enumerate(sources)]))]

        # The units' busy/waiting flags, registered (cleared by start) before the deadlock and
        # completion checks use them: each unit's term in its own flip-flop first, so the
        # units' logic ends there, then their AND / OR in a second one (a cycle later).
        # A term sampled while ``start`` is high is dropped in the second step (start_d is
        # start a cycle later), so the first needs no gate.
        start_d = Signal()
        m.d.sync += start_d.eq(start)

        def late(terms, name, reduce):
            qs = []
            for i, term in enumerate(terms):
                q = Signal(name=f"{name}_{i}")
                m.d.sync += q.eq(term)
                qs.append(q)
            q = Signal(name=name)
            m.d.sync += q.eq(reduce(Cat(*qs)) & ~start & ~start_d)
            return q

        waiters = (load, compute, store, kv_load, kv_store)
        quiet = late([(~load.busy | load.waiting), (~compute.busy | compute.waiting),
                      (~store.busy | store.waiting),
                      *(~c.busy | c.blocked | c.waiting for c in (kv_load, kv_store)),
                      (fetch.ended | fetch.blocked), ~fetch.busy, ~read_busy, ~write_busy],
                     "quiet_q", lambda v: v.all())
        someone_waits = late([u.waiting for u in waiters], "someone_waits_q", lambda v: v.any())

        # Deadlock: nothing can move for several cycles while someone waits for a token.
        stuck = Signal()
        m.d.comb += stuck.eq(running & ~err_latched & quiet & someone_waits)
        # The oldest instruction still waiting for its token is reported: the lowest pc of a
        # waiting unit, the earlier unit in this order on a tie. A tree of registered pairwise
        # choices; nothing moves while stuck, so it has long settled when DEADLOCK is raised.
        level = []
        for u in waiters:
            found, pc = Signal(), Signal(32)
            m.d.sync += [found.eq(u.waiting), pc.eq(u.pc)]
            level.append((found, pc))
        while len(level) > 1:
            paired = []
            for i in range(0, len(level), 2):
                found, pc = Signal(), Signal(32)
                if i + 1 < len(level):
                    (fa, pa), (fb, pb) = level[i], level[i + 1]
                    take_b = fb & (~fa | (pb < pa))
                    m.d.sync += [found.eq(fa | fb), pc.eq(Mux(take_b, pb, pa))]
                else:
                    m.d.sync += [found.eq(level[i][0]), pc.eq(level[i][1])]
                paired.append((found, pc))
            level = paired
        m.d.comb += oldest_waiting.eq(level[0][1])
        # Counted one cycle late (stuck registered first): the units' busy/waiting logic ends
        # in a flip-flop.
        stuck_q = Signal()
        m.d.sync += stuck_q.eq(stuck & ~start)
        stuck_for = Signal(range(_DEADLOCK_CYCLES + 1))
        m.d.sync += stuck_for.eq(Mux(stuck_q, stuck_for + (stuck_for != _DEADLOCK_CYCLES), 0))
        m.d.comb += deadlock.eq(stuck_for == _DEADLOCK_CYCLES)

        # Completion.
        all_idle = late([~load.busy, ~compute.busy, ~store.busy, ~fetch.busy, ~kv_load.busy,
                         ~kv_store.busy, fetch.queues_empty,
                         *(~stage.busy for stage in instr_stages), ~read_busy, ~write_busy,
                         fetch.ended, ~any_error], "all_idle_q", lambda v: v.all())
        # Both ways to finish are registered conditions, so completion is seen a cycle or two
        # later. Once true they stay true: idle units start nothing, and the bus is sampled
        # while the units are already halted (err_latched), so no request can slip in.
        ended_idle = Signal()
        bus_quiet = Signal()
        m.d.sync += [ended_idle.eq(all_idle & ~start),
                     bus_quiet.eq(err_latched & ~start & ~read_busy & ~write_busy &
                                  ~store.bus_busy)]
        finished = Signal()
        m.d.comb += finished.eq(running & ~start & (
            (ended_idle & ~err_latched) | (err_latched & bus_quiet)))
        done = Signal()
        irq_pending = Signal()
        irq_enable = Signal()
        # Registered: ``start`` (and its copy ``unit_reset``) reset every unit, so they must
        # come straight from flip-flops.
        start_request = reg("ctrl", "w_stb") & reg("ctrl", "w_data")[0] & ~running
        m.d.sync += [start.eq(start_request), unit_reset.eq(start_request)]
        m.d.comb += fetch.start.eq(start_d)
        with m.If(reg("ctrl", "w_stb")):
            m.d.sync += irq_enable.eq(reg("ctrl", "w_data")[1])
        with m.If(start):
            m.d.sync += [running.eq(1), done.eq(0), err_latched.eq(0),
                         err_code.eq(ErrorCode.NONE), err_pc.eq(0)]
        with m.Elif(finished):
            m.d.sync += [running.eq(0), done.eq(1), irq_pending.eq(1)]
        with m.If(reg("irq", "w_stb") & reg("irq", "w_data")[0]):
            m.d.sync += irq_pending.eq(0)
        m.d.comb += self.irq.eq(irq_pending & irq_enable)

        # Identity, status.
        m.d.comb += [
            reg("id", "r_data").eq(ID_MAGIC),
            reg("version", "r_data").eq(VERSION),
            reg("config0", "r_data").eq(R | (C << 8) | (B << 16)),
            reg("config1", "r_data").eq((cfg.input_rows.bit_length() - 1) |
                                        ((cfg.weight_rows.bit_length() - 1) << 8) |
                                        ((cfg.acc_rows.bit_length() - 1) << 16)),
            reg("config2", "r_data").eq(cfg.store_param_cache | cfg.param_slots << 16),
            reg("status", "r_data").eq(Mux(running, Status.BUSY, 0) |
                                       Mux(done, Status.DONE, 0) |
                                       Mux(done & err_latched, Status.ERROR, 0) |
                                       (err_code.as_value() << 8)),
            reg("fault_pc", "r_data").eq(err_pc),
            reg("pc", "r_data").eq(fetch.pc),
            reg("irq", "r_data").eq(irq_pending),
        ]

        # Performance counters (64-bit; the host reads high, low, high to catch a carry).
        strobes = writer.i_data.payload.strb
        written = Signal(range(B + 1))
        m.d.comb += written.eq(sum(strobes[i] for i in range(B)))
        # The DMA flags come from the reader's and writer's logic: registered once more (with
        # running) before they are combined, so those two counts land a cycle later still.
        dma_running, dma_busy, dma_beat = Signal(), Signal(), Signal()
        m.d.sync += [dma_running.eq(running), dma_busy.eq(read_busy | write_busy),
                     dma_beat.eq(reader.beat | writer.beat)]
        increments = {
            "CYCLES": running,
            "COMPUTE_CYCLES": running & compute.computing,
            "DMA_BUSY_CYCLES": dma_running & dma_busy,
            "DMA_STALL_CYCLES": dma_running & dma_busy & ~dma_beat,
            "BYTES_READ": Mux(running & reader.beat, B, 0),
            "BYTES_WRITTEN": Mux(running & writer.i_data.valid & writer.i_data.ready,
                                 written, 0),
            "INSTRUCTIONS": running & fetch.dispatched,
        }
        # Increments are registered first, so the events' logic (e.g. the fetch unit's decode)
        # does not run on into the 64-bit adders; each count lands one cycle later, never
        # across a start (no event happens while not running).
        for name in _COUNTERS:
            count = Signal(64, name=f"count_{name.lower()}")
            step = Signal(range(B + 1), name=f"step_{name.lower()}")
            m.d.sync += step.eq(increments[name])
            with m.If(start):
                m.d.sync += count.eq(0)
            with m.Else():
                m.d.sync += count.eq(count + step)
            lo = name.lower() + "_lo"
            hi = name.lower() + "_hi"
            m.d.comb += [reg(lo, "r_data").eq(count[:32]), reg(hi, "r_data").eq(count[32:])]
        return m
