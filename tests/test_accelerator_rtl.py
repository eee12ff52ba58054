"""Verilator + cocotb tests of the full accelerator (``octet.sim.tb_accelerator``).

Each configuration is compiled once (cached); the cocotb tests compare device memory after
each program with the golden ISA simulator (``octet.sim.isa_sim``).
"""

import json
from dataclasses import asdict

import pytest

from octet.config import AcceleratorConfig
from octet.hdl.accelerator import Accelerator
from octet.hdl.accelerator_sim import build_sim_model
from octet.sim.verilator_build import build_model

from .test_core_rtl import failed_cases

CONFIGS = {
    "4x4": AcceleratorConfig(rows=4, cols=4, input_rows=512, weight_rows=512, acc_rows=256,
                             bus_bytes=8, mem_bytes=1 << 20, param_slots=64),
}


@pytest.mark.verilator
@pytest.mark.parametrize("name", list(CONFIGS))
def test_accelerator_against_golden(name, seed, tmp_path):
    cfg = CONFIGS[name]
    model = build_model(Accelerator(cfg), "octet_accelerator")
    results = model.run("octet.sim.tb_accelerator", test_dir=tmp_path,
                        extra_env={"OCTET_SEED": str(seed),
                                   "OCTET_CONFIG": json.dumps(asdict(cfg))})
    cases, bad = failed_cases(results)
    assert cases, "no cocotb test ran"
    assert not bad, f"failing cocotb tests on {name}: {bad} (log: {tmp_path})"


@pytest.mark.verilator
def test_accelerator_with_fast_memory(seed, tmp_path):
    """The in-design memory and backdoor device used by benchmarks and the demo.

    Its store unit keeps 8 parameter records: the random int8 STOREs (1 to 12 channels) take
    both the on-chip copy and the re-read path."""
    cfg = AcceleratorConfig(rows=4, cols=4, input_rows=512, weight_rows=512, acc_rows=256,
                            bus_bytes=8, mem_bytes=1 << 18, store_param_cache=8,
                            param_slots=16)
    model = build_sim_model(cfg)
    results = model.run("octet.sim.tb_accelerator_fast", test_dir=tmp_path,
                        extra_env={"OCTET_SEED": str(seed),
                                   "OCTET_CONFIG": json.dumps(asdict(cfg))})
    cases, bad = failed_cases(results)
    assert cases, "no cocotb test ran"
    assert not bad, f"failing cocotb tests: {bad} (log: {tmp_path})"
