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
STATUS shows DONE|ERROR with the code and the faulting instruction's address. A state in
which every unit waits for a token nobody can produce is reported as DEADLOCK, so the
accelerator never hangs. Halts, errors, deadlock and completion are decided by
``hdl/error_control.py``; the performance counters are ``hdl/perf_counters.py``.

Tested by ``tests/test_accelerator_rtl.py`` (cocotb + Verilator against
``octet.sim.isa_sim``, random programs, random AXI latency and backpressure, errors).
"""

from amaranth.hdl import Cat, DomainRenamer, Module, Mux, ResetInserter, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import ID_MAGIC, VERSION, Opcode, Reg, Status

from .axi import AxiLiteSignature, AxiSignature, connect_read_write
from .axi_reader import AxiReader
from .axi_writer import AxiWriter
from .axil_csr import CsrBank
from .compute_unit import ComputeUnit
from .credit_stage import CreditStage
from .error_control import ErrorControl
from .fetch_unit import FetchUnit
from .global_buffer import GlobalBuffer
from .kv_controller import KvController, kv_decode
from .load_unit import LoadUnit
from .perf_counters import COUNTERS, PerfCounters
from .read_arbiter import connect_reads
from .skid_buffer import SkidBuffer
from .store_unit import StoreUnit
from .token_queue import TokenQueue

__all__ = ["Accelerator"]

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
    for name in COUNTERS:
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
        start_d = Signal()                 # start a cycle later: the fetch unit's start
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
        # taken), so not even the stage's state reaches the queues' output enables. The stages
        # run at half rate: their output registers load only while empty, so the unit's ready
        # enables no wide register either (a unit spends two cycles or more on each
        # instruction, so this costs no cycles).
        # They are reset with the units: after an error a stage may still hold an instruction
        # the halted fetch unit had passed on, which must not run at the next program's start.
        # In front of a KV controller the stage also registers the controller's KV decode, so
        # the controller's ready (the stage's output enable) does not run through a decode of
        # the stage's own output register.
        instr_stages = []
        for name, src, ctl, dst in (
                ("load", fetch.o_load, kv_load, Opcode.KV_LOAD),
                ("compute", fetch.o_compute, compute, None),
                ("store", fetch.o_store, kv_store, Opcode.KV_APPEND)):
            flag = kv_decode(dst) if dst is not None else None
            stage = unit(f"{name}_instr_stage",
                         CreditStage(src.payload.shape(), flag=flag, half_rate=True))
            wiring.connect(m, src, stage.i_stream)
            wiring.connect(m, stage.o_stream, ctl.i_instr)
            if dst is not None:
                m.d.comb += ctl.i_is_kv.eq(stage.o_flag)
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

        # MEM_LIMIT 0 stands for 2**32 (the whole 32-bit address space). Registered: the units
        # compare addresses against it, and it is written well before a program starts.
        mem_limit = Signal(33, init=cfg.mem_bytes)
        m.d.sync += mem_limit.eq(Mux(reg("mem_limit", "value") == 0, 1 << 32,
                                     reg("mem_limit", "value")))
        m.d.comb += [fetch.mem_limit.eq(mem_limit), load.mem_limit.eq(mem_limit),
                     store.mem_limit.eq(mem_limit), kv_load.mem_limit.eq(mem_limit),
                     kv_store.mem_limit.eq(mem_limit),
                     fetch.prog_base.eq(reg("prog_base", "value"))]
        # Errors and completion (``hdl/error_control.py``): each unit's report, flags and pc
        # in, its halt out; every port of a unit's watch but ``error`` and ``halt`` is driven
        # by the unit's port of the same name.
        m.submodules.error_control = errors = ErrorControl()
        for name, u in (("fetch", fetch), ("kv_load", kv_load), ("load", load),
                        ("compute", compute), ("kv_store", kv_store), ("store", store)):
            watch = getattr(errors, name)
            wiring.connect(m, u.error, watch.error)
            m.d.comb += u.halt.eq(watch.halt)
            for flag in watch.signature.members:
                if flag not in ("error", "halt"):
                    m.d.comb += getattr(watch, flag).eq(getattr(u, flag))
        m.d.comb += [errors.start.eq(start), errors.start_d.eq(start_d),
                     errors.running.eq(running),
                     errors.instr_stage_busy.eq(Cat(*(stage.busy for stage in instr_stages))),
                     errors.token_overflow.eq(Cat(*(t.overflow for t in tokens.values())).any()),
                     errors.read_busy.eq(read_busy), errors.write_busy.eq(write_busy)]

        done = Signal()
        irq_pending = Signal()
        irq_enable = Signal()
        # Registered: ``start`` (and its copy ``unit_reset``) reset every unit, so they must
        # come straight from flip-flops.
        start_request = reg("ctrl", "w_stb") & reg("ctrl", "w_data")[0] & ~running
        m.d.sync += [start.eq(start_request), unit_reset.eq(start_request)]
        m.d.sync += start_d.eq(start)
        m.d.comb += fetch.start.eq(start_d)
        with m.If(reg("ctrl", "w_stb")):
            m.d.sync += irq_enable.eq(reg("ctrl", "w_data")[1])
        with m.If(start):
            m.d.sync += [running.eq(1), done.eq(0)]
        with m.Elif(errors.finished):
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
                                       Mux(done & errors.err_latched, Status.ERROR, 0) |
                                       (errors.err_code.as_value() << 8)),
            reg("fault_pc", "r_data").eq(errors.err_pc),
            reg("pc", "r_data").eq(fetch.pc),
            reg("irq", "r_data").eq(irq_pending),
        ]

        # Performance counters (``hdl/perf_counters.py``).
        m.submodules.counters = counters = PerfCounters(B)
        m.d.comb += [counters.start.eq(start), counters.running.eq(running),
                     counters.computing.eq(compute.computing),
                     counters.dispatched.eq(fetch.dispatched),
                     counters.read_busy.eq(read_busy), counters.write_busy.eq(write_busy),
                     counters.read_beat.eq(reader.beat), counters.write_beat.eq(writer.beat),
                     counters.write_accept.eq(writer.i_data.valid & writer.i_data.ready),
                     counters.write_strb.eq(writer.i_data.payload.strb)]
        for name in COUNTERS:
            count = getattr(counters, name.lower())
            m.d.comb += [reg(f"{name.lower()}_lo", "r_data").eq(count[:32]),
                         reg(f"{name.lower()}_hi", "r_data").eq(count[32:])]
        return m
