"""cocotb tests of the accelerator with its memory inside the design (fast configuration).

Same differential checks as :mod:`octet.sim.tb_accelerator` (random programs and error cases
against the golden device, whole memory compared), but with
:class:`~octet.hdl.axi_memory.AxiMemory` and :class:`~octet.sim.fast_device.FastVerilatorDevice`,
which is what benchmarks and the demo use. Run by ``tests/test_accelerator_rtl.py``.
"""

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles

from octet import isa
from octet.sim import tb_accelerator as common
from octet.sim.fast_device import CLOCK_NS, FastVerilatorDevice
from octet.sim.random_programs import random_program


async def _setup(dut):
    cfg = common._config()
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rst.value = 1
    dev = FastVerilatorDevice(dut, cfg.bus_bytes)
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 1)
    return cfg, dev


@cocotb.test()
async def random_programs_fast_memory(dut):
    """Random valid programs; whole memory and accumulator equal to the golden device's."""
    cfg, dev = await _setup(dut)
    nprng = np.random.default_rng(common._seed(7))

    def host():
        golden_dev = common._scrubbed_golden(cfg, dev)
        for i in range(6):
            prog, params, lay = random_program(cfg, nprng, phases=int(nprng.integers(1, 4)))
            image = nprng.integers(0, 256, cfg.mem_bytes, dtype=np.uint8).tobytes()
            writes = [(lay.params, params), (lay.program, isa.encode_program(prog))]
            golden, rtl = common._run_both(cfg, dev, image, writes, lay.program, golden_dev)
            common._compare(golden, rtl, f"program {i} ({len(prog)} instructions)")
    await bridge(host)()
