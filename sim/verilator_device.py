"""The Verilator backend of the host :class:`~octet.host.device.Device` interface.

Host code is blocking (``device.read_reg(...)``); the simulation is cocotb coroutines. The
host runs in a thread started with ``cocotb.task.bridge`` and every device primitive re-enters the
simulator with ``cocotb.task.resume``, so the same runtime code that drives the golden model or a
board drives the RTL unchanged. Registers go over AXI4-Lite (cocotbext-axi ``AxiLiteMaster``);
device memory is the AXI slave model's storage, reached by backdoor (host DMA into device
memory is not what is being verified).

Used by ``octet.sim.tb_accelerator`` and ``octet.sim.host_session``.
"""

from cocotb.task import resume
from cocotb.triggers import ClockCycles

from octet.host.device import Device, DeviceError

__all__ = ["VerilatorDevice"]


class VerilatorDevice(Device):
    """Device on a simulated :class:`octet.hdl.accelerator.Accelerator`.

    Parameters
    ----------
    dut : cocotb handle
        The accelerator top level (``clk`` running).
    axil : cocotbext.axi.AxiLiteMaster
        Bound to ``s_axil``.
    memory : object with ``read(addr, n)`` and ``write(addr, data)``
        The device memory behind ``m_axi`` (e.g. cocotbext-axi ``AxiRam``).
    poll_cycles : int
        Cycles between two reads of STATUS while a program runs.
    """

    def __init__(self, dut, axil, memory, poll_cycles=64):
        self._dut = dut
        self._axil = axil
        self._memory = memory
        self.poll_cycles = poll_cycles
        self.cycles_waited = 0

    async def _read(self, reg):
        resp = await self._axil.read(int(reg), 4)
        if int(resp.resp) != 0:
            raise DeviceError(f"register read at 0x{int(reg):02x} failed ({resp.resp!r})")
        return int.from_bytes(resp.data, "little")

    async def _write(self, reg, value):
        resp = await self._axil.write(int(reg), int(value).to_bytes(4, "little"))
        if int(resp.resp) != 0:
            raise DeviceError(f"register write at 0x{int(reg):02x} failed ({resp.resp!r})")

    async def _wait(self, cycles):
        await ClockCycles(self._dut.clk, cycles)

    def read_reg(self, reg):
        return resume(self._read)(reg)

    def write_reg(self, reg, value):
        resume(self._write)(reg, value)

    def read_mem(self, addr, n):
        return bytes(self._memory.read(addr, n))

    def write_mem(self, addr, data):
        self._memory.write(addr, bytes(data))

    def wait(self, max_cycles):
        resume(self._wait)(max_cycles)
        self.cycles_waited += max_cycles
        return max_cycles
