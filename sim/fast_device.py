"""The fast Verilator backend: device memory inside the design, nothing in Python per cycle.

:class:`FastVerilatorDevice` drives :class:`octet.hdl.accelerator_sim.AcceleratorWithMemory`.
Registers are written and read by driving the AXI4-Lite pins directly, only while an access is
in progress; device memory is reached through the simulator's handle on the memory array
(``memory.ram.storage``, one bus word per element). :meth:`FastVerilatorDevice.run` is one
coroutine in the simulator's thread (one hand-over from the host thread per program, not one
per register access): it starts the program with the interrupt enabled, lets Verilator run
until the ``irq`` pin rises (no polling), disables the interrupt again and reads STATUS and the
counters. So while a program runs Verilator runs at its own speed, with no Python at all. Use
it from blocking host code in a ``cocotb.task.bridge`` thread, like
:class:`~octet.sim.verilator_device.VerilatorDevice`.

Tested by ``tests/test_accelerator_rtl.py`` (fast configuration, against the golden device).
"""

import cocotb
from cocotb.clock import Clock
from cocotb.task import resume
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from octet.host.device import Device, DeviceError, DeviceTimeout, RunResult
from octet.isa import Ctrl, Reg, Status
from octet.sim.isa_sim import COUNTER_REGS

__all__ = ["FastVerilatorDevice", "CLOCK_NS", "start_fast_device"]

#: Clock period the fast testbenches use.
CLOCK_NS = 10


class FastVerilatorDevice(Device):
    """Device on a simulated ``AcceleratorWithMemory``.

    Parameters
    ----------
    dut : cocotb handle
        The top level, with its clock running at :data:`CLOCK_NS`.
    bus_bytes : int
        Width of a memory word.
    poll_cycles : int
        Cycles between two reads of STATUS when host code polls (``wait``); :meth:`run`
        waits for the interrupt instead.
    """

    def __init__(self, dut, bus_bytes, poll_cycles=256):
        self._dut = dut
        self._bus = bus_bytes
        self._storage = dut.memory.ram.storage
        self._words = len(self._storage)
        self.poll_cycles = poll_cycles
        self._pending = {}       # word index -> value written but not yet in the simulator
        for name, value in (("awvalid", 0), ("wvalid", 0), ("bready", 0), ("arvalid", 0),
                            ("rready", 0), ("wstrb", 0xF)):
            getattr(dut, f"s_axil__{name}").value = value

    # --- registers: AXI4-Lite driven from Python only during an access ---------------------

    def _pin(self, name):
        return getattr(self._dut, f"s_axil__{name}")

    async def _write(self, reg, value):
        p = self._pin
        p("awaddr").value = int(reg)
        p("wdata").value = int(value) & 0xFFFF_FFFF
        p("wstrb").value = 0xF
        p("awvalid").value = 1
        p("wvalid").value = 1
        p("bready").value = 1
        aw = w = False
        while True:
            await RisingEdge(self._dut.clk)
            # values read here are those the design saw before this edge
            if not aw and p("awready").value:
                aw = True
                p("awvalid").value = 0
            if not w and p("wready").value:
                w = True
                p("wvalid").value = 0
            if aw and w and p("bvalid").value:
                resp = int(p("bresp").value)
                p("bready").value = 0
                break
        if resp:
            raise DeviceError(f"register write at 0x{int(reg):02x} failed (BRESP {resp})")

    async def _read(self, reg):
        p = self._pin
        p("araddr").value = int(reg)
        p("arvalid").value = 1
        p("rready").value = 1
        ar = False
        while True:
            await RisingEdge(self._dut.clk)
            if not ar and p("arready").value:
                ar = True
                p("arvalid").value = 0
            if ar and p("rvalid").value:
                data, resp = int(p("rdata").value), int(p("rresp").value)
                p("rready").value = 0
                break
        if resp:
            raise DeviceError(f"register read at 0x{int(reg):02x} failed (RRESP {resp})")
        return data

    async def _wait(self, cycles):
        await Timer(cycles * CLOCK_NS, unit="ns")

    # Backdoor writes to the memory array take effect when the simulator next runs; until
    # then reads must see them from here (a partial-word write reads its word back).
    def read_reg(self, reg):
        value = resume(self._read)(reg)
        self._pending.clear()
        return value

    def write_reg(self, reg, value):
        resume(self._write)(reg, value)
        self._pending.clear()

    def wait(self, max_cycles):
        resume(self._wait)(max_cycles)
        self._pending.clear()
        return max_cycles

    # --- running a program: one coroutine, woken by the interrupt pin ----------------------

    def _now(self):
        return int(get_sim_time("ns")) // CLOCK_NS

    async def _run(self, prog_addr, timeout_cycles):
        """:meth:`Device.run` up to its outcome, in the simulator's thread.

        Returns ``("busy",)``, ``("timeout", pc, waited)`` or ``("done", status, counters,
        waited)``.
        """
        if await self._read(Reg.STATUS) & Status.BUSY:
            return ("busy",)
        await self._write(Reg.IRQ, 1)
        await self._write(Reg.PROG_BASE, prog_addr)
        start = self._now()
        await self._write(Reg.CTRL, Ctrl.START | Ctrl.IRQ_ENABLE)
        if not self._dut.irq.value:
            if timeout_cycles is None:
                await RisingEdge(self._dut.irq)
            else:
                left = max(1, timeout_cycles - (self._now() - start))
                await First(RisingEdge(self._dut.irq), Timer(left * CLOCK_NS, unit="ns"))
        waited = self._now() - start
        await self._write(Reg.CTRL, 0)             # interrupt off again, as after Device.run
        status = await self._read(Reg.STATUS)
        if not (status & Status.DONE and not status & Status.BUSY):
            return ("timeout", await self._read(Reg.PC), waited)
        counters = {}
        for reg, name in COUNTER_REGS.items():     # frozen once the program is done
            low = await self._read(reg)
            counters[name] = await self._read(reg + 4) << 32 | low
        return ("done", status, counters, waited)

    def run(self, prog_addr, timeout_cycles=None):
        """:meth:`Device.run`, waiting for the interrupt pin instead of polling STATUS."""
        if timeout_cycles is not None and (not isinstance(timeout_cycles, int)
                                           or timeout_cycles < 0):
            raise ValueError(f"timeout_cycles must be a non-negative integer or None, "
                             f"not {timeout_cycles!r}")
        outcome = resume(self._run)(prog_addr, timeout_cycles)
        self._pending.clear()
        if outcome[0] == "busy":
            raise DeviceError("the accelerator is busy with another program")
        if outcome[0] == "timeout":
            _, pc, waited = outcome
            raise DeviceTimeout(f"program at 0x{prog_addr:08x} still running after "
                                f"{waited} cycles (timeout {timeout_cycles}); PC is "
                                f"0x{pc:08x}")
        _, status, counters, waited = outcome
        if status & Status.ERROR:
            self._raise_error(status)
        return RunResult(counters, waited)

    # --- memory: backdoor through the simulator's handle on the array ----------------------

    def _span(self, addr, n):
        if addr < 0 or n < 0 or addr + n > self._words * self._bus:
            raise DeviceError(f"device memory access [0x{addr:x}, 0x{addr + n:x}) is outside "
                              f"the simulated {self._words * self._bus} bytes")
        return addr // self._bus, -(-(addr + n) // self._bus)

    def read_mem(self, addr, n):
        first, end = self._span(addr, n)
        B = self._bus
        pending = self._pending
        blob = b"".join((pending[i] if i in pending else int(self._storage[i].value))
                        .to_bytes(B, "little") for i in range(first, end))
        offset = addr - first * B
        return blob[offset:offset + n]

    def write_mem(self, addr, data):
        data = bytes(data)
        if not data:
            return
        first, end = self._span(addr, len(data))
        B = self._bus
        head = addr - first * B
        tail = end * B - (addr + len(data))
        if head or tail:   # keep the bytes of partial words that lie outside the write
            old = self.read_mem(first * B, (end - first) * B)
            data = old[:head] + data + old[len(old) - tail:]
        for k, i in enumerate(range(first, end)):
            word = int.from_bytes(data[k * B:(k + 1) * B], "little")
            self._storage[i].value = word
            self._pending[i] = word


async def start_fast_device(dut, config):
    """Start the clock, reset the design and return its :class:`FastVerilatorDevice`."""
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rst.value = 1
    device = FastVerilatorDevice(dut, config.bus_bytes)
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)        # the design's reset is rst registered once
    return device
