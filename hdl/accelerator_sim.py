"""Simulation top level: the accelerator with its device memory inside the design.

For fast Verilator runs (benchmarks, the transformer demo) nothing in Python may run every
cycle: the device memory is :class:`~octet.hdl.axi_memory.AxiMemory` on the accelerator's AXI
master, and only the AXI4-Lite register port and the interrupt are top-level ports. The host
loads and reads memory through the simulator's backdoor to ``memory.ram.storage``; build it
with ``extra_verilog=[RAM_VERILOG]`` (:func:`build_sim_model`).

Tested by ``tests/test_accelerator_rtl.py`` (the ``fast`` configuration).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .axi import AxiLiteSignature
from .axi_memory import RAM_VERILOG, AxiMemory

__all__ = ["AcceleratorWithMemory", "build_sim_model"]


class AcceleratorWithMemory(wiring.Component):
    """:class:`Accelerator` plus an in-design AXI memory of ``config.mem_bytes``.

    Parameters
    ----------
    config : AcceleratorConfig
    latency : int
        Read latency of the memory in cycles.

    Ports
    -----
    s_axil : In(AxiLiteSignature(8, 32))
    irq : Out(1)
    """

    def __init__(self, config, latency=8):
        self._accel = Accelerator(config)
        self._memory = AxiMemory(config.mem_bytes, config.bus_bits, latency)
        super().__init__({"s_axil": In(AxiLiteSignature(8, 32)), "irq": Out(1)})

    @property
    def config(self):
        return self._accel.config

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = accel = self._accel
        m.submodules.memory = memory = self._memory
        wiring.connect(m, wiring.flipped(self.s_axil), accel.s_axil)
        wiring.connect(m, accel.m_axi, memory.s_axi)
        m.d.comb += self.irq.eq(accel.irq)
        return m


def build_sim_model(config, latency=8, progress=True):
    """The cached Verilator model of ``AcceleratorWithMemory(config)`` (top ``octet_sim``)."""
    from octet.sim.verilator_build import build_model
    return build_model(AcceleratorWithMemory(config, latency), "octet_sim", progress=progress,
                       extra_verilog=[RAM_VERILOG])
