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
token queues (``octet.hdl.token_queue``). The first unit error stops every unit; bus
transfers already started complete, then STATUS shows DONE|ERROR with the code and the
faulting instruction's address. A state in which every unit waits for a token nobody can
produce is reported as DEADLOCK, so the accelerator never hangs.

Tested by ``tests/test_accelerator_rtl.py`` (cocotb + Verilator against
``octet.sim.isa_sim``, random programs, random AXI latency and backpressure, errors).
"""

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import ID_MAGIC, VERSION, ErrorCode, Opcode, Reg, Status

from .axi import AxiLiteSignature, AxiSignature, connect_read_write
from .axi_reader import AxiReader
from .axi_writer import AxiWriter
from .axil_csr import CsrBank
from .compute_unit import ComputeUnit
from .fetch_unit import FetchUnit
from .kv_controller import KvController
from .load_unit import LoadUnit
from .read_arbiter import connect_reads
from .store_unit import StoreUnit
from .token_queue import TokenQueue

__all__ = ["Accelerator"]

_COUNTERS = ["CYCLES", "COMPUTE_CYCLES", "DMA_BUSY_CYCLES", "DMA_STALL_CYCLES", "BYTES_READ",
             "BYTES_WRITTEN", "INSTRUCTIONS"]
_DEADLOCK_CYCLES = 8


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

    def __init__(self, config=None):
        config = config or AcceleratorConfig()
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"Accelerator config must be an AcceleratorConfig, not {config!r}")
        self._cfg = config
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
        unit_reset = Signal()
        m.d.comb += unit_reset.eq(start)

        def unit(name, component):
            m.submodules[name] = ResetInserter(unit_reset)(component)
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
        wiring.connect(m, fetch.o_load, kv_load.i_instr)
        wiring.connect(m, kv_load.o_instr, load.i_instr)
        wiring.connect(m, fetch.o_compute, compute.i_instr)
        wiring.connect(m, fetch.o_store, kv_store.i_instr)
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
        connect_reads(m, reader, [fetch.o_req, load.o_req, store.o_rreq, kv_load.o_req,
                                  kv_store.o_req],
                      [fetch.i_data, load.i_data, store.i_rdata, kv_load.i_data,
                       kv_store.i_data])
        wiring.connect(m, store.o_wreq, writer.i_req)
        wiring.connect(m, store.o_wdata, writer.i_data)
        wiring.connect(m, writer.o_done, store.i_wdone)

        # Errors: the first one wins and halts everyone.
        units = [fetch, kv_load, load, compute, kv_store, store]
        any_error = Cat(*(u.error.valid for u in units)).any()
        overflow = Cat(*(t.overflow for t in tokens.values())).any()
        err_latched = Signal()
        err_code = Signal(ErrorCode)
        err_pc = Signal(32)
        deadlock = Signal()
        oldest_waiting = Signal(32)
        for u in units:
            m.d.comb += u.halt.eq(any_error | err_latched)
        # MEM_LIMIT 0 stands for 2**32 (the whole 32-bit address space).
        mem_limit = Signal(33)
        m.d.comb += mem_limit.eq(Mux(reg("mem_limit", "value") == 0, 1 << 32,
                                     reg("mem_limit", "value")))
        m.d.comb += [fetch.mem_limit.eq(mem_limit), load.mem_limit.eq(mem_limit),
                     store.mem_limit.eq(mem_limit), kv_load.mem_limit.eq(mem_limit),
                     kv_store.mem_limit.eq(mem_limit),
                     fetch.prog_base.eq(reg("prog_base", "value"))]
        with m.If(running & ~err_latched):
            for u in reversed(units):
                with m.If(u.error.valid):
                    m.d.sync += [err_latched.eq(1), err_code.eq(u.error.code),
                                 err_pc.eq(u.error.pc)]
            with m.If(overflow):
                m.d.sync += [err_latched.eq(1), err_code.eq(ErrorCode.TOKEN_OVERFLOW),
                             err_pc.eq(fetch.pc)]
            with m.If(deadlock):
                m.d.sync += [err_latched.eq(1), err_code.eq(ErrorCode.DEADLOCK),
                             err_pc.eq(oldest_waiting)]

        # Deadlock: nothing can move for several cycles while someone waits for a token.
        stuck = Signal()
        quiet = [(~load.busy | load.waiting), (~compute.busy | compute.waiting),
                 (~store.busy | store.waiting)]
        quiet += [~c.busy | c.blocked | c.waiting for c in (kv_load, kv_store)]
        waiters = (load, compute, store, kv_load, kv_store)
        m.d.comb += stuck.eq(running & ~err_latched & Cat(*quiet).all() &
                             Cat(*(u.waiting for u in waiters)).any() &
                             (fetch.ended | fetch.blocked) & ~fetch.busy & ~reader.busy &
                             ~writer.busy)
        # The oldest instruction still waiting for its token is reported.
        found, oldest = load.waiting, load.pc
        for u in (compute, store, kv_load, kv_store):
            take = u.waiting & (~found | (u.pc < oldest))
            found, oldest = found | u.waiting, Mux(take, u.pc, oldest)
        m.d.comb += oldest_waiting.eq(oldest)
        stuck_for = Signal(range(_DEADLOCK_CYCLES + 1))
        m.d.sync += stuck_for.eq(Mux(stuck, stuck_for + (stuck_for != _DEADLOCK_CYCLES), 0))
        m.d.comb += deadlock.eq(stuck_for == _DEADLOCK_CYCLES)

        # Completion.
        all_idle = (~load.busy & ~compute.busy & ~store.busy & ~fetch.busy &
                    ~kv_load.busy & ~kv_store.busy &
                    fetch.queues_empty & ~reader.busy & ~writer.busy)
        finished = Signal()
        m.d.comb += finished.eq(running & ~start & (
            (fetch.ended & all_idle & ~any_error & ~err_latched) |
            (err_latched & ~reader.busy & ~writer.busy & ~store.bus_busy)))
        done = Signal()
        irq_pending = Signal()
        irq_enable = Signal()
        m.d.comb += start.eq(reg("ctrl", "w_stb") & reg("ctrl", "w_data")[0] & ~running)
        start_d = Signal()
        m.d.sync += start_d.eq(start)
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
        dma_busy = reader.busy | writer.busy
        increments = {
            "CYCLES": running,
            "COMPUTE_CYCLES": running & compute.computing,
            "DMA_BUSY_CYCLES": running & dma_busy,
            "DMA_STALL_CYCLES": running & dma_busy & ~reader.beat & ~writer.beat,
            "BYTES_READ": Mux(running & reader.beat, B, 0),
            "BYTES_WRITTEN": Mux(running & writer.i_data.valid & writer.i_data.ready,
                                 written, 0),
            "INSTRUCTIONS": running & fetch.dispatched,
        }
        for name in _COUNTERS:
            count = Signal(64, name=f"count_{name.lower()}")
            with m.If(start):
                m.d.sync += count.eq(0)
            with m.Else():
                m.d.sync += count.eq(count + increments[name])
            lo = name.lower() + "_lo"
            hi = name.lower() + "_hi"
            m.d.comb += [reg(lo, "r_data").eq(count[:32]), reg(hi, "r_data").eq(count[32:])]
        return m
