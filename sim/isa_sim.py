"""The golden functional simulator of the Octet ISA: registers, fetch, and the whole device.

:class:`IsaSimulator` is the reference every implementation of the ISA is held to: the same
register map (:class:`octet.isa.Reg`), device memory, scratchpads and accumulator as the RTL,
and the execution model of ``docs/isa.md``. Writing ``Ctrl.START`` to ``CTRL`` runs the program
at ``PROG_BASE`` to completion inside the register write (data instructions in
:mod:`octet.sim.isa_exec`, queues, tokens and the cycle estimate in
:mod:`octet.sim.isa_sched`). With ``timed=True`` the device additionally *looks* busy: STATUS
and IRQ report completion only once :meth:`IsaSimulator.advance` has moved the clock past the
estimated cycle count, which is how host timeouts are exercised. Host code talks to it through
:class:`octet.host.device.GoldenDevice`. Tested by ``tests/test_isa_sim.py``.
"""

from octet import isa
from octet.config import AcceleratorConfig
from octet.isa import ALLOWED_FLAGS, INSTRUCTION_BYTES, ErrorCode, Reg, Status

from .isa_exec import Datapath
from .isa_sched import Fault, Scheduler, decode_fast

__all__ = ["IsaSimulator", "COUNTER_REGS", "config_registers"]

#: The 64-bit counters, by register (low word at the offset, high word at offset + 4).
COUNTER_REGS = {Reg.CYCLES: "cycles", Reg.COMPUTE_CYCLES: "compute_cycles",
                Reg.DMA_BUSY_CYCLES: "dma_busy_cycles", Reg.DMA_STALL_CYCLES: "dma_stall_cycles",
                Reg.BYTES_READ: "bytes_read", Reg.BYTES_WRITTEN: "bytes_written",
                Reg.INSTRUCTIONS: "instructions"}
_FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")
_MASK32 = 0xFFFF_FFFF
_KV_REGS = {Reg.KV_SEQ_TABLE: "seq_table", Reg.KV_SEQ_COUNT: "seq_count",
            Reg.KV_POOL_BASE: "pool_base", Reg.KV_GEOMETRY: "geometry"}


def config2_register(config):
    """CONFIG2: the store unit's on-chip records (temporary copy, parameter slots)."""
    return config.store_param_cache | config.param_slots << 16


def config_registers(config):
    """``(CONFIG0, CONFIG1)`` register values describing ``config``."""
    config0 = config.rows | config.cols << 8 | config.bus_bytes << 16
    config1 = ((config.input_rows.bit_length() - 1)
               | (config.weight_rows.bit_length() - 1) << 8
               | (config.acc_rows.bit_length() - 1) << 16)
    return config0, config1


def _check_offset(offset):
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"register offset must be an integer, not {offset!r}")
    if offset % 4 or not 0 <= offset < isa.REG_BYTES:
        raise ValueError(f"register offset 0x{offset:x} is not a 4-byte aligned offset "
                         f"below 0x{isa.REG_BYTES:x}")


class IsaSimulator:
    """Functional simulator of one accelerator, driven through registers and memory.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator being simulated.
    timed : bool
        Report completion in STATUS / IRQ only after :meth:`advance` has covered the
        estimated cycles (memory and counters change at START either way).

    Attributes
    ----------
    datapath : Datapath
        Device memory (``memory``), ``input_spad``, ``weight_spad`` and ``acc``.
    fault : Fault or None
        The error that stopped the last program, with a ``detail`` text naming the rule.
    clock : int
        Cycles advanced so far (timed mode).
    """

    def __init__(self, config, *, timed=False):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        self.config = config
        self.timed = bool(timed)
        self.datapath = Datapath(config)
        self.fault = None
        self.clock = 0
        self._busy_until = 0
        self._status = 0
        self._fault_pc = 0
        self._prog_base = 0
        self._pc = 0
        self._irq_pending = False
        self._irq_enable = False
        self._counters = dict.fromkeys(COUNTER_REGS.values(), 0)

    # --- convenience views -----------------------------------------------------------------

    @property
    def memory(self):
        return self.datapath.memory

    @property
    def input_spad(self):
        return self.datapath.input_spad

    @property
    def weight_spad(self):
        return self.datapath.weight_spad

    @property
    def acc(self):
        return self.datapath.acc

    @property
    def busy(self):
        return self.timed and self.clock < self._busy_until

    @property
    def irq(self):
        """Level of the interrupt output: a pending completion with IRQ_ENABLE set."""
        return self._irq_enable and self._irq_pending and not self.busy

    @property
    def counters(self):
        """The performance counters of the last program, by lower-case register name."""
        return dict(self._counters)

    # --- registers -------------------------------------------------------------------------

    def read_reg(self, offset):
        """Value of the 32-bit register at byte ``offset`` (a :class:`Reg` or an int)."""
        _check_offset(int(offset) if isinstance(offset, Reg) else offset)
        offset = int(offset)
        base = offset & ~7
        if Reg.CYCLES <= base <= Reg.INSTRUCTIONS:
            value = self._counters[COUNTER_REGS[Reg(base)]]
            return (value >> (32 if offset & 4 else 0)) & _MASK32
        if offset == Reg.STATUS:
            return Status.BUSY.value if self.busy else self._status
        if offset == Reg.IRQ:
            return int(self._irq_pending and not self.busy)
        config0, config1 = config_registers(self.config)
        kv = self.datapath.kv
        return {Reg.ID: isa.ID_MAGIC, Reg.VERSION: isa.VERSION, Reg.CONFIG0: config0,
                Reg.CONFIG1: config1, Reg.CONFIG2: config2_register(self.config),
                Reg.FAULT_PC: self._fault_pc,
                Reg.PROG_BASE: self._prog_base, Reg.PC: self._pc & _MASK32,
                Reg.MEM_LIMIT: self.datapath.mem_limit & _MASK32,
                Reg.KV_SEQ_TABLE: kv.seq_table, Reg.KV_SEQ_COUNT: kv.seq_count,
                Reg.KV_POOL_BASE: kv.pool_base, Reg.KV_GEOMETRY: kv.geometry}.get(offset, 0)

    def write_reg(self, offset, value):
        """Write a 32-bit register; read-only and unassigned registers ignore writes."""
        _check_offset(int(offset) if isinstance(offset, Reg) else offset)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MASK32:
            raise ValueError(f"register value must be a 32-bit unsigned integer, not {value!r}")
        offset = int(offset)
        if offset == Reg.CTRL:
            self._irq_enable = bool(value & isa.Ctrl.IRQ_ENABLE)
            if value & isa.Ctrl.START and not self.busy:
                self._start()
        elif offset == Reg.PROG_BASE:
            self._prog_base = value
        elif offset == Reg.MEM_LIMIT:
            self.datapath.mem_limit = value or 1 << 32
        elif offset in _KV_REGS:
            setattr(self.datapath.kv, _KV_REGS[offset], value)
        elif offset == Reg.IRQ and value & 1:
            self._irq_pending = False

    # --- device memory (the host's side of the bus) ------------------------------------------

    def _check_span(self, addr, n):
        if not isinstance(addr, int) or not isinstance(n, int) or addr < 0 or n < 0 \
                or addr + n > self.config.mem_bytes:
            raise ValueError(f"device memory access [{addr!r}, +{n!r}) is outside "
                             f"[0, {self.config.mem_bytes})")

    def read_mem(self, addr, n):
        """``n`` bytes of device memory from ``addr``."""
        self._check_span(addr, n)
        return self.memory[addr:addr + n].tobytes()

    def write_mem(self, addr, data):
        """Write bytes to device memory at ``addr``."""
        data = bytes(data)
        self._check_span(addr, len(data))
        self.memory[addr:addr + len(data)] = memoryview(data)

    def advance(self, cycles):
        """Move the clock on by ``cycles`` (timed mode: a running program may finish)."""
        if not isinstance(cycles, int) or cycles < 0:
            raise ValueError(f"cycles must be a non-negative integer, not {cycles!r}")
        self.clock += cycles

    # --- execution -------------------------------------------------------------------------

    def _fetch(self, pc):
        self.datapath.check_dram(pc, pc, pc + INSTRUCTION_BYTES, "instruction fetch")
        word = int.from_bytes(self.memory[pc:pc + INSTRUCTION_BYTES].tobytes(), "little")
        opcode, fields = decode_fast(word)
        if opcode is None:
            raise Fault(ErrorCode.ILLEGAL_OPCODE, pc, f"opcode {fields['opcode']} is illegal")
        bad = [f for f in _FLAGS if fields[f] and f not in ALLOWED_FLAGS[opcode]]
        if bad:
            raise Fault(ErrorCode.MALFORMED, pc,
                        f"{opcode.name} may not set header flag(s) {', '.join(bad)}")
        reserved = isa.LAYOUTS[opcode]["reserved"]
        if word >> reserved.offset:
            raise Fault(ErrorCode.MALFORMED, pc, f"{opcode.name} has reserved bits set")
        return opcode, fields

    def _start(self):
        self.fault = None
        self._fault_pc = 0
        self._status = Status.BUSY.value
        scheduler = Scheduler(self.config, self._fetch, self.datapath.execute)
        scheduler.pc = self._prog_base
        try:
            if self._prog_base % INSTRUCTION_BYTES:
                raise Fault(ErrorCode.MALFORMED, self._prog_base,
                            f"PROG_BASE 0x{self._prog_base:x} is not {INSTRUCTION_BYTES}-byte "
                            "aligned")
            scheduler.run(self._prog_base)
        except Fault as fault:
            self.fault = fault
        counters = scheduler.counters or dict.fromkeys(COUNTER_REGS.values(), 0)
        self._counters = {k: v & (1 << 64) - 1 for k, v in counters.items()}
        self._pc = scheduler.pc
        if self.fault is None:
            self._status = Status.DONE.value
        else:
            self._status = (Status.DONE | Status.ERROR).value | self.fault.code.value << 8
            self._fault_pc = self.fault.pc & _MASK32
        self._irq_pending = True
        self._busy_until = self.clock + self._counters["cycles"]

    def run(self, prog_base):
        """Convenience for tests: set PROG_BASE, START, and return the STATUS value."""
        self.write_reg(Reg.PROG_BASE, prog_base)
        self.write_reg(Reg.CTRL, isa.Ctrl.START.value)
        self.advance(max(0, self._busy_until - self.clock))
        return self.read_reg(Reg.STATUS)
