"""The board system (``octet.hdl.soc.Soc``) in Verilator, driven through its UART pins.

Builds a 2x2 SoC with 16 KiB of block-RAM device memory and an 8-cycle UART bit (cached
after the first build), then runs ``octet.sim.tb_soc_uart``: GEMMs compiled by the host and
run through :class:`~octet.host.board.BoardDevice` over the simulated serial line (bit-exact
with NumPy), and corrupted frames rejected with no write.
"""

import gc
import json
from dataclasses import asdict

import pytest

from octet.hdl.soc import Soc, soc_config
from octet.sim.verilator_build import build_model

from .test_core_rtl import failed_cases

DIVISOR = 8


@pytest.mark.verilator
def test_soc_through_uart(seed, tmp_path):
    cfg = soc_config(2, 2, mem_bytes=16 << 10)
    # clock_hz only tells the host how long to sleep between polls; 1 GHz keeps them short.
    model = build_model(Soc(cfg, divisor=DIVISOR, clock_hz=1_000_000_000,
                            timeout_cycles=64 * 10 * DIVISOR), "octet_soc")
    results = model.run("octet.sim.tb_soc_uart", test_dir=tmp_path,
                        extra_env={"OCTET_SEED": str(seed), "OCTET_DIVISOR": str(DIVISOR),
                                   "OCTET_CONFIG": json.dumps(asdict(cfg))})
    cases, bad = failed_cases(results)
    assert len(cases) == 2, f"expected 2 cocotb tests, ran {cases} (log: {tmp_path})"
    assert not bad, f"failing cocotb tests: {bad} (log: {tmp_path})"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_soc_arguments_are_checked():
    with pytest.raises(TypeError, match="SoC config must be an AcceleratorConfig"):
        Soc("2x2", divisor=8, clock_hz=50_000_000)
    with pytest.raises(TypeError, match="SoC clock must be a positive integer in Hz"):
        Soc(soc_config(), divisor=8, clock_hz=0)
    gc.collect()
