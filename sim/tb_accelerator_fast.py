"""cocotb tests of the accelerator with its memory inside the design (fast configuration).

Same differential checks as :mod:`octet.sim.tb_accelerator` (random programs and error cases
against the golden device, whole memory compared), but with
:class:`~octet.hdl.axi_memory.AxiMemory` and :class:`~octet.sim.fast_device.FastVerilatorDevice`,
which is what benchmarks and the demo use. Run by ``tests/test_accelerator_rtl.py``.
"""

import cocotb
import numpy as np
from cocotb.task import bridge, resume

from octet import isa
from octet.sim import tb_accelerator as common
from octet.sim.fast_device import start_fast_device
from octet.sim.random_programs import random_program


async def _setup(dut):
    cfg = common._config()
    return cfg, await start_fast_device(dut, cfg)


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


@cocotb.test()
async def bus_error_and_interrupt(dut):
    """A read past the physical memory (MEM_LIMIT set larger) stops with BUS_ERROR at the
    golden device's faulting address; the interrupt follows Ctrl.IRQ_ENABLE and IRQ clears it."""
    cfg, dev = await _setup(dut)
    R = cfg.rows
    beyond = cfg.mem_bytes + 0x100
    program = isa.encode_program([
        (isa.Opcode.LOAD, dict(target=isa.Target.INPUT, rows=1, row_bytes=R, dram_addr=0x100,
                               dram_stride=R, spad_stride=1)),
        (isa.Opcode.LOAD, dict(target=isa.Target.INPUT, rows=1, row_bytes=R,
                               dram_addr=beyond, dram_stride=R, spad_stride=1)),
        (isa.Opcode.END, {})])

    async def read_irq():
        return int(dut.irq.value)
    irq = resume(read_irq)   # the pin is read in the simulator's thread

    def host():
        golden_dev = common.GoldenDevice(cfg)
        outcomes = []
        for device in (golden_dev, dev):
            device.write_reg(isa.Reg.MEM_LIMIT, 2 * cfg.mem_bytes)
            device.write_program(0x1000, program)
            try:
                device.run(0x1000, timeout_cycles=100_000)
                outcomes.append(None)
            except common.AcceleratorError as exc:
                outcomes.append((exc.code, exc.fault_pc))
            device.write_reg(isa.Reg.MEM_LIMIT, cfg.mem_bytes)
        assert outcomes[0] == (isa.ErrorCode.BUS_ERROR, 0x1020), outcomes
        assert outcomes[1] == outcomes[0], f"golden {outcomes[0]}, RTL {outcomes[1]}"
        # Interrupt: pending after a program, visible on the pin only when enabled.
        ok = isa.encode_program([(isa.Opcode.END, {})])
        dev.write_program(0x2000, ok)
        dev.run(0x2000, timeout_cycles=10_000)
        assert dev.read_reg(isa.Reg.IRQ) & 1
        irq_disabled = irq()
        dev.write_reg(isa.Reg.CTRL, isa.Ctrl.IRQ_ENABLE)
        irq_enabled = irq()
        dev.write_reg(isa.Reg.IRQ, 1)
        cleared = irq(), dev.read_reg(isa.Reg.IRQ) & 1
        return irq_disabled, irq_enabled, cleared

    irq_disabled, irq_enabled, cleared = await bridge(host)()
    assert (irq_disabled, irq_enabled, cleared) == (0, 1, (0, 0))
