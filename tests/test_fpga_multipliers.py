"""Choosing the PEs whose products are built in logic (``octet.host.fpga_multipliers``).

Reference: the ECP5-85F's 156 18 x 18 multipliers (Lattice DS1044); the PE module names are
those Amaranth writes for ``SystolicArray`` (``<path>.array.pe_<row>_<col>``).
"""

import pytest

from octet.host.fpga_multipliers import (
    lut_multiplier_pes,
    lut_multiplier_script,
    pe_modules,
)

_RTLIL = "\n".join(
    ["module \\top", "end", "module \\top.soc.accel.compute.array", "end"] +
    [f"module \\top.soc.accel.compute.array.pe_{i}_{j}\nend" for i in (1, 0, 10)
     for j in (0, 1)] +
    ["module \\top.soc.accel.compute.array.pe_0_0.sub", "end"])


def test_pe_modules_are_found_in_row_major_order():
    pes = pe_modules(_RTLIL)
    assert [(i, j) for i, j, _ in pes] == [(0, 0), (0, 1), (1, 0), (1, 1), (10, 0), (10, 1)]
    assert pes[0][2] == "top.soc.accel.compute.array.pe_0_0"


def test_only_the_excess_goes_to_logic_from_the_bottom_row():
    pes = pe_modules(_RTLIL)
    assert lut_multiplier_pes(pes, 156, 156) == []
    assert lut_multiplier_pes(pes, 100, 156) == []
    assert [(i, j) for i, j, _ in lut_multiplier_pes(pes, 159, 156)] == \
        [(1, 1), (10, 0), (10, 1)]
    assert len(lut_multiplier_pes(pes, 162, 156)) == 6
    assert len(lut_multiplier_pes(pes, 100, 156, pe_dsp=0)) == 6
    assert [(i, j) for i, j, _ in lut_multiplier_pes(pes, 100, 156, pe_dsp=5)] == [(10, 1)]
    assert [(i, j) for i, j, _ in lut_multiplier_pes(pes, 158, 156, pe_dsp=5)] == \
        [(10, 0), (10, 1)]
    with pytest.raises(ValueError, match="163 DSP multipliers, 157 outside the array"):
        lut_multiplier_pes(pes, 163, 156)


def test_script_selects_each_chosen_pe_multiplier():
    pes = pe_modules(_RTLIL)
    assert lut_multiplier_script([]) == ""
    assert lut_multiplier_script(pes[-2:]) == (
        "proc top.soc.accel.compute.array.pe_10_0 top.soc.accel.compute.array.pe_10_1\n"
        "booth top.soc.accel.compute.array.pe_10_0/t:$mul "
        "top.soc.accel.compute.array.pe_10_1/t:$mul")
