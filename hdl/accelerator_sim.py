"""Simulation top level: the accelerator with its device memory inside the design.

For fast Verilator runs (benchmarks, the transformer demo) nothing in Python may run every
cycle: the device memory is :class:`~octet.hdl.axi_memory.AxiMemory` on the accelerator's AXI
master, and only the AXI4-Lite register port and the interrupt are top-level ports. The host
loads and reads memory through the simulator's backdoor to ``memory.ram.storage``; build it
with ``extra_verilog=[RAM_VERILOG]`` (:func:`build_sim_model`).

Simulation speed. Verilator re-evaluates, at every ``eval()`` (several per clock cycle), all
combinational logic that depends on a top-level input. Amaranth's synchronous reset feeds the
next-state logic of every register, and the CSR bank's write strobes reset and start the
units combinationally, so with the ports wired straight in nearly the whole design sat in that
region. Here the ``rst`` input is registered once (a reset synchroniser, as on a board) and
the accelerator and memory run in a domain ``core`` (the same clock) reset by that register;
the register port goes through :class:`~octet.hdl.axil_slice.AxiLiteSlice`, which registers
every channel. Only those flip-flops depend on inputs. Reset takes effect one cycle after
``rst`` rises and ends one cycle after it falls. Only the top level's ports and the memory
array are visible to the testbench (:data:`SIM_PUBLIC`); everything else is Verilator's to
optimise.

Tested by ``tests/test_accelerator_rtl.py`` (the ``fast`` configuration).
"""

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .axi import AxiLiteSignature
from .axi_memory import RAM_VERILOG, AxiMemory
from .axil_slice import AxiLiteSlice

__all__ = ["AcceleratorWithMemory", "build_sim_model", "SIM_PUBLIC"]

#: The only signals the fast testbench touches: the top level's ports and the memory array.
SIM_PUBLIC = (("octet_sim", "clk"), ("octet_sim", "rst"), ("octet_sim", "irq"),
              ("octet_sim", "s_axil__*"), ("octet_sim_ram", "storage"))


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
        # The design's domain: the same clock, reset by a register (see the module docstring).
        m.domains.core = core = ClockDomain("core")
        reset_q = Signal(init=1)
        m.d.sync += reset_q.eq(0)           # 1 while rst is high (its reset value), then 0
        m.d.comb += [core.clk.eq(ClockSignal("sync")), core.rst.eq(reset_q)]
        m.submodules.accel = accel = DomainRenamer("core")(self._accel)
        m.submodules.memory = memory = DomainRenamer("core")(self._memory)
        m.submodules.csr_slice = csr_slice = DomainRenamer("core")(AxiLiteSlice(8, 32))
        wiring.connect(m, wiring.flipped(self.s_axil), csr_slice.s)
        wiring.connect(m, csr_slice.m, accel.s_axil)
        wiring.connect(m, accel.m_axi, memory.s_axi)
        m.d.comb += self.irq.eq(accel.irq)
        return m


def build_sim_model(config, latency=8, progress=True):
    """The cached Verilator model of ``AcceleratorWithMemory(config)`` (top ``octet_sim``)."""
    from octet.sim.verilator_build import build_model
    return build_model(AcceleratorWithMemory(config, latency), "octet_sim", progress=progress,
                       extra_verilog=[RAM_VERILOG], public=SIM_PUBLIC)
