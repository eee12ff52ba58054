"""The abstract accelerator device: one host path for every backend.

A :class:`Device` is four primitives (32-bit register read / write, device-memory read /
write) plus an optional :meth:`Device.wait` hook that lets time pass (simulators advance their
clock, boards sleep). Everything else the host needs is implemented once here on top of them:
:meth:`Device.identify` checks the identity registers and derives the
:class:`~octet.config.AcceleratorConfig`, :meth:`Device.run` starts a program and polls for its
end, raising :class:`DeviceTimeout` or :class:`AcceleratorError` (with the decoded faulting
instruction), and :meth:`Device.counters` reads the 64-bit performance counters.
:class:`GoldenDevice` is the device backed by the functional simulator
(:mod:`octet.sim.isa_sim`). Tested through ``tests/test_isa_sim.py`` and
``tests/test_compiler.py``.
"""

from dataclasses import dataclass

from octet import isa
from octet.config import AcceleratorConfig, ConfigError
from octet.isa import Ctrl, ErrorCode, Reg, Status
from octet.isa_doc import format_instruction
from octet.sim.isa_sim import COUNTER_REGS, IsaSimulator

__all__ = ["DeviceError", "DeviceTimeout", "AcceleratorError", "RunResult", "Device",
           "GoldenDevice"]


class DeviceError(RuntimeError):
    """The device cannot be used as asked (wrong identity, busy, unreadable)."""


class DeviceTimeout(DeviceError):
    """A program did not finish within the allowed cycles."""


class AcceleratorError(DeviceError):
    """A program stopped with an error; names the code, faulting address and instruction.

    Attributes
    ----------
    code : ErrorCode
    fault_pc : int
    instruction : str
        The faulting instruction decoded from device memory.
    detail : str or None
        The backend's explanation, where it has one (the golden simulator names the rule).
    """

    def __init__(self, code, fault_pc, instruction, detail=None):
        message = f"accelerator error {code.name} at 0x{fault_pc:08x}: {instruction}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)
        self.code = code
        self.fault_pc = fault_pc
        self.instruction = instruction
        self.detail = detail

    def __reduce__(self):
        # Rebuild from the fields, not the message, so the error survives pickling (a
        # Verilator session sends it from the simulation process).
        return type(self), (self.code, self.fault_pc, self.instruction, self.detail), \
            self.__dict__


@dataclass(frozen=True)
class RunResult:
    """Outcome of a finished program: its performance counters and the cycles waited."""

    counters: dict
    waited_cycles: int

    @property
    def cycles(self):
        return self.counters["cycles"]


class Device:
    """Base class of every accelerator backend.

    Subclasses implement :meth:`read_reg`, :meth:`write_reg`, :meth:`read_mem` and
    :meth:`write_mem`, and may override :meth:`wait` and :meth:`fault_detail`.
    """

    #: Cycles :meth:`run` lets pass between two polls of STATUS.
    poll_cycles = 1 << 14

    _config = None

    # --- primitives ------------------------------------------------------------------------

    def read_reg(self, reg) -> int:  # pragma: no cover - interface
        """32-bit value of the register at byte offset ``reg`` (:class:`~octet.isa.Reg`)."""
        raise NotImplementedError

    def write_reg(self, reg, value):  # pragma: no cover - interface
        """Write a 32-bit register."""
        raise NotImplementedError

    def read_mem(self, addr, n) -> bytes:  # pragma: no cover - interface
        """``n`` bytes of device memory from ``addr``."""
        raise NotImplementedError

    def write_mem(self, addr, data):  # pragma: no cover - interface
        """Write ``data`` (bytes) to device memory at ``addr``."""
        raise NotImplementedError

    def wait(self, max_cycles) -> int:
        """Let up to ``max_cycles`` device cycles pass; return how many passed.

        The default assumes the device runs on its own while the host polls.
        """
        return max_cycles

    def fault_detail(self):
        """The backend's explanation of the last error, or None."""
        return None

    def call(self, function, *args, **kwargs):
        """Run host code against this device: ``function(self, *args, **kwargs)``.

        The same blocking host code (e.g. :func:`octet.host.compiler.run_gemm`) runs on every
        backend. A backend living in another process runs it next to the device instead of
        here (:class:`~octet.host.verilator_session.VerilatorSession` runs it inside the
        simulation), so ``function`` should be a module-level function and its arguments,
        result and exceptions picklable.
        """
        return function(self, *args, **kwargs)

    def call_streaming(self, function, on_emit, *args, **kwargs):
        """:meth:`call`, passing each value ``function`` reports with ``device.emit(value)``
        to ``on_emit`` as it is reported."""
        self.emit = on_emit
        try:
            return self.call(function, *args, **kwargs)
        finally:
            del self.emit

    # --- implemented once ------------------------------------------------------------------

    @property
    def config(self) -> AcceleratorConfig:
        """The accelerator's configuration, read from its identity registers once."""
        if self._config is None:
            self._config = self.identify()
        return self._config

    def identify(self) -> AcceleratorConfig:
        """Check ID and VERSION and return the configuration CONFIG0/1/2 and MEM_LIMIT describe.

        ``mem_bytes`` is the MEM_LIMIT register, whose reset value is the memory size
        (0 meaning 2**32). Raises :class:`DeviceError` naming the mismatch.
        """
        ident = self.read_reg(Reg.ID)
        if ident != isa.ID_MAGIC:
            raise DeviceError(f"not an Octet accelerator: ID register reads 0x{ident:08x}, "
                              f"expected 0x{isa.ID_MAGIC:08x}")
        version = self.read_reg(Reg.VERSION)
        if version >> 16 != isa.VERSION >> 16:
            raise DeviceError(f"accelerator ISA version {version >> 16}.{version & 0xFFFF} is "
                              f"not supported by this host (version {isa.VERSION >> 16}."
                              f"{isa.VERSION & 0xFFFF})")
        c0, c1 = self.read_reg(Reg.CONFIG0), self.read_reg(Reg.CONFIG1)
        c2 = self.read_reg(Reg.CONFIG2)
        mem = self.read_reg(Reg.MEM_LIMIT) or 1 << 32
        try:
            return AcceleratorConfig(
                rows=c0 & 0xFF, cols=c0 >> 8 & 0xFF, bus_bytes=c0 >> 16 & 0xFF,
                input_rows=1 << (c1 & 0xFF), weight_rows=1 << (c1 >> 8 & 0xFF),
                acc_rows=1 << (c1 >> 16 & 0xFF), mem_bytes=mem,
                store_param_cache=c2 & 0xFFFF, param_slots=c2 >> 16)
        except ConfigError as exc:
            raise DeviceError(f"accelerator reports an invalid configuration "
                              f"(CONFIG0 0x{c0:08x}, CONFIG1 0x{c1:08x}, CONFIG2 0x{c2:08x}, "
                              f"MEM_LIMIT 0x{mem:x}): "
                              f"{exc}") from None

    def write_program(self, addr, program):
        """Write program bytes (or ``(Opcode, fields)`` pairs) at a 32-byte aligned address."""
        if addr % isa.INSTRUCTION_BYTES:
            raise ValueError(f"program address 0x{addr:x} is not "
                             f"{isa.INSTRUCTION_BYTES}-byte aligned")
        if not isinstance(program, (bytes, bytearray)):
            program = isa.encode_program(program)
        self.write_mem(addr, program)

    def run(self, prog_addr, timeout_cycles=None) -> RunResult:
        """Run the program at ``prog_addr`` and wait for it to finish.

        Parameters
        ----------
        prog_addr : int
            Address of the first instruction.
        timeout_cycles : int or None
            Give up after this many cycles of waiting (None: wait as long as it takes).

        Raises
        ------
        DeviceTimeout
            The program is still running after ``timeout_cycles``.
        AcceleratorError
            The program stopped with an error.
        """
        if timeout_cycles is not None and (not isinstance(timeout_cycles, int)
                                           or timeout_cycles < 0):
            raise ValueError(f"timeout_cycles must be a non-negative integer or None, "
                             f"not {timeout_cycles!r}")
        if self.read_reg(Reg.STATUS) & Status.BUSY:
            raise DeviceError("the accelerator is busy with another program")
        self.write_reg(Reg.IRQ, 1)
        self.write_reg(Reg.PROG_BASE, prog_addr)
        self.write_reg(Reg.CTRL, Ctrl.START.value)
        waited = 0
        while True:
            status = self.read_reg(Reg.STATUS)
            if status & Status.DONE and not status & Status.BUSY:
                break
            if timeout_cycles is not None and waited >= timeout_cycles:
                raise DeviceTimeout(f"program at 0x{prog_addr:08x} still running after "
                                    f"{waited} cycles (timeout {timeout_cycles}); PC is "
                                    f"0x{self.read_reg(Reg.PC):08x}")
            step = self.poll_cycles if timeout_cycles is None else \
                max(1, min(self.poll_cycles, timeout_cycles - waited))
            waited += max(1, self.wait(step))
        if status & Status.ERROR:
            self._raise_error(status)
        return RunResult(self.counters(), waited)

    def _raise_error(self, status):
        code = ErrorCode((status >> 8) & 0xF)
        pc = self.read_reg(Reg.FAULT_PC)
        try:
            word = int.from_bytes(self.read_mem(pc, isa.INSTRUCTION_BYTES), "little")
            text = format_instruction(*isa.decode(word))
        except (ValueError, DeviceError):
            text = "instruction not readable"
        raise AcceleratorError(code, pc, text, self.fault_detail())

    def counters(self) -> dict:
        """The 64-bit performance counters by lower-case name (``cycles``, ``bytes_read``...)."""
        out = {}
        for reg, name in COUNTER_REGS.items():
            high = self.read_reg(reg + 4)
            low = self.read_reg(reg)
            again = self.read_reg(reg + 4)
            if again != high:  # the low word wrapped between the reads
                high, low = again, self.read_reg(reg)
            out[name] = high << 32 | low
        return out


class GoldenDevice(Device):
    """A :class:`Device` backed by the functional simulator (:class:`IsaSimulator`).

    Parameters
    ----------
    config : AcceleratorConfig, optional
        The simulated accelerator (default: the default configuration).
    timed : bool
        Let STATUS report completion only after :meth:`wait` has advanced the simulator's
        clock past the program's estimated cycles, so timeouts behave as on hardware.
    """

    def __init__(self, config=None, *, timed=True):
        self.simulator = IsaSimulator(AcceleratorConfig() if config is None else config,
                                      timed=timed)

    def read_reg(self, reg):
        return self.simulator.read_reg(int(reg))

    def write_reg(self, reg, value):
        self.simulator.write_reg(int(reg), value)

    def read_mem(self, addr, n):
        return self.simulator.read_mem(addr, n)

    def write_mem(self, addr, data):
        self.simulator.write_mem(addr, data)

    def wait(self, max_cycles):
        self.simulator.advance(max_cycles)
        return max_cycles

    def fault_detail(self):
        fault = self.simulator.fault
        return None if fault is None else fault.detail
