"""Verilator + cocotb tests of the KV-cache controller (``octet.sim.tb_kv``).

Checked against the golden simulator (memory, accumulator, error codes) and, for the
decode-attention step, the NumPy reference. Two memories: the accelerator's in-design memory
(as the demo and benchmarks use) and a cocotbext-axi RAM with random stalls on every channel.
"""

import json
from dataclasses import asdict

import pytest

from octet.config import AcceleratorConfig
from octet.hdl.accelerator import Accelerator
from octet.hdl.accelerator_sim import build_sim_model
from octet.sim.verilator_build import build_model

from .test_accelerator_rtl import CONFIGS as ACCEL_CONFIGS
from .test_core_rtl import failed_cases

# The configurations of tests/test_accelerator_rtl.py, so that the Verilator builds are shared.
CONFIGS = {"fast": AcceleratorConfig(rows=4, cols=4, input_rows=512, weight_rows=512,
                                     acc_rows=256, bus_bytes=8, mem_bytes=1 << 18,
                                     store_param_cache=8),
           "axi": ACCEL_CONFIGS["4x4"]}


@pytest.mark.verilator
@pytest.mark.parametrize("memory", ["fast", "axi"])
def test_kv_controller_against_golden(memory, seed, tmp_path):
    config = CONFIGS[memory]
    if memory == "fast":
        model = build_sim_model(config)
    else:
        model = build_model(Accelerator(config), "octet_accelerator")
    env = {"OCTET_SEED": str(seed), "OCTET_CONFIG": json.dumps(asdict(config)),
           "OCTET_KV_MEMORY": memory}
    if memory == "axi":      # the stalling bus model is slow: fewer programs and steps
        env.update(OCTET_KV_PROGRAMS="4", OCTET_KV_STEPS="5")
    results = model.run("octet.sim.tb_kv", test_dir=tmp_path, extra_env=env)
    cases, bad = failed_cases(results)
    assert len(cases) == 3, f"expected 3 cocotb tests, got {cases}"
    assert not bad, f"failing cocotb tests ({memory} memory): {bad} (log: {tmp_path})"
