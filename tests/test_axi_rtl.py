"""Verilator + cocotb tests of the AXI bus blocks against cocotbext-axi's models.

One small top level (``octet.sim.tb_axi.AxiTestTop``: AxiReader and AxiWriter sharing one AXI4
master port, a CsrBank on an AXI4-Lite slave port) is compiled once (cached) and runs every
test of ``octet.sim.tb_axi``: reads and writes against ``AxiRam`` with random pauses on all
channels, SLVERR from an ``AxiSlave`` whose memory ends early, and register accesses from
``AxiLiteMaster``.
"""

import xml.etree.ElementTree as ET

import pytest

from octet.sim.tb_axi import AxiTestTop
from octet.sim.verilator_build import build_model

TESTS = ["read_random", "write_random", "read_and_write_together", "bus_errors", "csr_bank"]


@pytest.mark.verilator
def test_axi_blocks_against_cocotbext_axi(seed, tmp_path):
    model = build_model(AxiTestTop(), "octet_axi_top")
    results = model.run("octet.sim.tb_axi", extra_env={"OCTET_SEED": str(seed)},
                        test_dir=tmp_path)
    cases = list(ET.parse(results).getroot().iter("testcase"))
    bad = [c.get("name") for c in cases
           if c.find("failure") is not None or c.find("error") is not None]
    assert sorted(c.get("name") for c in cases) == sorted(TESTS), "unexpected cocotb test set"
    assert not bad, f"failing cocotb tests: {bad} (log: {tmp_path})"
