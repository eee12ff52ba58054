"""Verilator + cocotb tests of the compute core (array + requantizer), per array size.

Each size is compiled once (cached by a hash of its Verilog) and runs every test of
``octet.sim.tb_core`` against the NumPy golden model.
"""

import xml.etree.ElementTree as ET

import pytest

from octet.hdl.compute_core import ComputeCore
from octet.sim.verilator_build import build_model

SIZES = [(1, 1), (2, 2), (4, 8), (8, 8), (16, 16)]


def failed_cases(results_xml):
    root = ET.parse(results_xml).getroot()
    cases = list(root.iter("testcase"))
    bad = [c.get("name") for c in cases if c.find("failure") is not None
           or c.find("error") is not None]
    return cases, bad


@pytest.mark.verilator
@pytest.mark.parametrize("rows,cols", SIZES, ids=[f"{r}x{c}" for r, c in SIZES])
def test_core_against_golden(rows, cols, seed, tmp_path):
    model = build_model(ComputeCore(rows, cols), "octet_core")
    results = model.run("octet.sim.tb_core", extra_env={"OCTET_SEED": str(seed)},
                        test_dir=tmp_path)
    cases, bad = failed_cases(results)
    assert len(cases) == 6, f"expected 6 cocotb tests, ran {len(cases)}"
    assert not bad, f"failing cocotb tests on {rows}x{cols}: {bad} (log: {tmp_path})"
