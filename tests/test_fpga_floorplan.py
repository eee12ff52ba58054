"""The ECP5-85F floorplan (host/fpga_floorplan.py): its sites, the order cells get them, the
groups it leaves to the placer, and the netlist it rewrites. Checked against the site names
nextpnr-ecp5 gave these cells when it placed them itself (the 8x8 system's routed netlists of
docs/fpga.md, "The fourteenth round"); the CI build in test_bitstream.py places a pinned
netlist."""

import json

import pytest

from octet.host.fpga_floorplan import (
    BLOCK_COLUMNS,
    FLOORPLANS,
    apply_floorplan,
    dsp_sites,
    ebr_sites,
    floorplan,
)


def test_sites_follow_the_device_grid():
    assert ebr_sites((22,), (13,)) == ["X13/Y22/EBR0", "X15/Y22/EBR1", "X17/Y22/EBR2",
                                       "X19/Y22/EBR3"]
    assert dsp_sites((58,), (87, 96))[:5] == ["X87/Y58/MULT18_0", "X88/Y58/MULT18_1",
                                              "X91/Y58/MULT18_4", "X92/Y58/MULT18_5",
                                              "X96/Y58/MULT18_0"]
    assert len(ebr_sites((22, 46, 70, 82), BLOCK_COLUMNS)) == 208     # the 85F's block RAMs
    assert len(dsp_sites((10, 34, 58), BLOCK_COLUMNS)) == 156         # and its multipliers
    with pytest.raises(ValueError, match=r"no block-RAM row at Y23 on the ECP5-85F"):
        ebr_sites((23,), (13,))
    with pytest.raises(ValueError, match=r"no DSP block starts at column X14"):
        dsp_sites((10,), (14,))


def test_every_board_plan_uses_distinct_sites():
    for board, groups in FLOORPLANS.items():
        sites = [site for *_, group_sites in groups for site in group_sites]
        assert len(sites) == len(set(sites)), board


def _cells(cols=8, mem=32):
    cells = {f"soc.memory.ram.0.{n}": "DP16KD" for n in range(mem)}
    cells.update({f"soc.accel.acc.{b}.{n}": "DP16KD" for b in range(2) for n in range(8)})
    cells.update({f"soc.accel.store.row_path.requant.mul_{h}_{c}.dsp": "MULT18X18D"
                  for c in range(cols) for h in ("ll", "hh", "lh", "hl")})
    cells.update({"soc.accel.input_spad.0.0": "DP16KD", "soc.accel.store.checks.x": "MULT18X18D",
                  "soc.memory.ram.0.1_DOB1_TRELLIS_FF_Q": "TRELLIS_FF"})
    return cells


def test_cells_get_sites_in_bit_and_lane_order():
    sites, notes = floorplan("ulx3s-85f", _cells())
    assert len(sites) == 32 + 16 + 32            # the scratchpads and other DSPs stay free
    # The memory's 2-bit slices in bit order (numerically: slice 10 after slice 9).
    assert sites["soc.memory.ram.0.0"] == "X69/Y46/EBR0"
    assert sites["soc.memory.ram.0.9"] == "X89/Y46/EBR1"
    assert sites["soc.memory.ram.0.16"] == "X69/Y70/EBR0"
    assert sites["soc.accel.acc.1.0"] == "X22/Y70/EBR0"
    # Each requantizer lane's four products in one DSP block, hh, hl, lh, ll.
    lane1 = [sites[f"soc.accel.store.row_path.requant.mul_{h}_1.dsp"]
             for h in ("hh", "hl", "lh", "ll")]
    assert lane1 == ["X49/Y34/MULT18_0", "X50/Y34/MULT18_1", "X53/Y34/MULT18_4",
                     "X54/Y34/MULT18_5"]
    assert sites["soc.accel.store.row_path.requant.mul_hh_4.dsp"] == "X40/Y58/MULT18_0"
    assert notes[0] == "device memory: 32 DP16KD cells pinned (X69/Y46/EBR0 to X102/Y70/EBR3)"


def test_groups_that_do_not_fit_are_left_to_the_placer():
    sites, notes = floorplan("ulx3s-85f", _cells(cols=12, mem=4))
    assert notes[0] == "device memory: 4 DP16KD cells pinned (X69/Y46/EBR0 to X75/Y46/EBR3)"
    assert notes[2] == ("requantizer: 48 MULT18X18D cells, more than its 32 sites, left to "
                        "the placer")
    assert not any("requant" in name for name in sites)
    sites, notes = floorplan("ulx3s-85f", {"soc.memory.ram.0.0": "DP16KD"})
    assert notes[1:] == ["accumulator: no DP16KD cells, left to the placer",
                         "requantizer: no MULT18X18D cells, left to the placer"]
    with pytest.raises(ValueError, match=r"no floorplan for board 'icebreaker'"):
        floorplan("icebreaker", {})


def test_the_netlist_is_rewritten_with_bel_attributes(tmp_path):
    cells = {name: {"type": kind, "attributes": {}} for name, kind in _cells(cols=2).items()}
    path = tmp_path / "top.json"
    path.write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    notes = apply_floorplan(path, "ulx3s-85f")
    assert notes[2].startswith("requantizer: 8 MULT18X18D cells pinned")
    out = json.loads(path.read_text())["modules"]["top"]["cells"]
    assert out["soc.accel.acc.0.7"]["attributes"] == {"BEL": "X37/Y46/EBR3"}
    assert out["soc.accel.input_spad.0.0"]["attributes"] == {}
    with pytest.raises(ValueError, match=r"top.json has no module 'soc'"):
        apply_floorplan(path, "ulx3s-85f", top="soc")
