"""cocotb module that runs one host job on the compute core (Verilator backend).

Reads the job from ``$OCTET_JOB`` (npz: ``a``, ``b`` and optional requantization fields),
runs it with :class:`~octet.sim.core_driver.CoreDriver` and writes ``out``, ``gemm_cycles``
and ``requant_cycles`` to ``$OCTET_RESULT``. Used by :mod:`octet.host.verilator_backend`.
"""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock

from octet.numerics import RequantParams
from octet.sim.core_driver import CoreDriver


@cocotb.test()
async def run_job(dut):
    """Execute the job file and write the result file."""
    with np.load(os.environ["OCTET_JOB"]) as job:
        a, b = job["a"], job["b"]
        params = None
        if "multiplier" in job:
            params = RequantParams.create(job["multiplier"], job["shift"], job["bias"],
                                          int(job["zero_point"]), bool(job["relu"]))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    driver = CoreDriver(dut)
    await driver.reset()
    out, gemm_cycles = await driver.gemm(a, b)
    requant_cycles = 0
    if params is not None:
        out, requant_cycles = await driver.requantize(out, params)
    np.savez(os.environ["OCTET_RESULT"], out=out, gemm_cycles=gemm_cycles,
             requant_cycles=requant_cycles)
