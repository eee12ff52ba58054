"""The ``octet`` command line (``gemm``, ``generate``, ``demo``): results against int64 NumPy
and the golden model, cost reports, and bad input.

``octet gemm`` runs the compiled program on the golden device (its cycle model gives the
cycles) or, in the one Verilator-marked test, on the RTL of the whole accelerator, which must
give the same results and exact counters. Bad input, accelerator errors and timeouts must exit
with status 2 and one line naming the problem, no traceback. Convolutions:
``tests/test_cli_conv.py``.
"""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from octet.cli import main
from octet.host.compiler import run_gemm
from octet.host.device import GoldenDevice
from octet.host.devices import accelerator_config
from octet.numerics import RequantParams
from octet.sim import golden

from .test_cli_conv import conv_reference

#: Counters the golden simulator predicts exactly (docs/isa.md), so the RTL must match them.
EXACT_COUNTERS = ("compute_cycles", "bytes_written", "instructions")


@pytest.fixture
def operands(tmp_path):
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (13, 21), dtype=np.int8)
    b = rng.integers(-128, 128, (21, 10), dtype=np.int8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    return tmp_path, a, b


def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", "octet", *map(str, argv)],
                          capture_output=True, text=True, timeout=600)


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def test_gemm_golden_equals_int64_numpy(operands, capsys):
    tmp, a, b = operands
    assert main(["gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / "c.npy", "--json",
                 "--rows", "4", "--cols", "3"]) == 0
    out = np.load(tmp / "c.npy")
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, a.astype(np.int64) @ b.astype(np.int64))
    report = last_json(capsys.readouterr().out)
    assert report["backend"] == "golden"
    assert (report["rows"], report["cols"], report["bus_bytes"]) == (4, 3, 8)
    assert report["ideal_cycles"] == 13 * 21 * 10 / 12
    # The cycles are the golden simulator's CYCLES counter for the compiled program.
    _, stats = run_gemm(GoldenDevice(accelerator_config(4, 3)), a, b)
    assert report["counters"] == stats.counters
    assert report["cycles"] == stats.counters["cycles"]
    assert report["utilization"] == pytest.approx(report["ideal_cycles"] / report["cycles"])
    assert report["dram_bytes"] == stats.counters["bytes_read"] + stats.counters["bytes_written"]
    assert report["bandwidth_utilization"] == pytest.approx(
        report["dram_bytes"] / (report["cycles"] * 8))
    assert report["cycle_source"] == "cycle model" and report["dtype"] == "int32"
    assert (report["m"], report["k"], report["n"]) == (13, 21, 10)


@pytest.mark.parametrize("m,k,n,rows,cols,bus", [
    (1, 1, 1, 8, 8, 8), (1, 37, 5, 4, 4, 4), (9, 8, 8, 8, 8, 16), (30, 70, 19, 3, 5, 8),
    (17, 130, 65, 16, 16, 16), (2, 5, 3, 1, 1, 4), (40, 9, 70, 64, 64, 8),
])
def test_gemm_golden_random_shapes(tmp_path, capsys, m, k, n, rows, cols, bus):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    assert main(["gemm", tmp_path / "a.npy", tmp_path / "b.npy", "-o", tmp_path / "c.npy",
                 "--rows", rows, "--cols", cols, "--bus-bytes", bus, "--json"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"),
                                  a.astype(np.int64) @ b.astype(np.int64))
    report = last_json(capsys.readouterr().out)
    assert report["bus_bytes"] == bus
    assert report["ideal_cycles"] == m * k * n / (rows * cols)
    assert report["cycles"] >= report["counters"]["compute_cycles"] > 0


def test_gemm_requant_golden_matches_tflite_semantics(operands, capsys):
    tmp, a, b = operands
    mult, shift = golden.quantize_multiplier(np.linspace(1e-4, 3e-3, 10))
    np.savez(tmp / "p.npz", multiplier=mult, shift=shift, bias=np.arange(10, dtype=np.int32),
             zero_point=-7, relu=True)
    assert main(["gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / "q.npy",
                 "--requant", tmp / "p.npz"]) == 0
    params = RequantParams.create(mult, shift, np.arange(10), -7, True)
    expect = golden.requantize(a.astype(np.int64) @ b.astype(np.int64), params)
    got = np.load(tmp / "q.npy")
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, expect)
    assert got.min() >= -7  # ReLU clamps at the zero point


@pytest.mark.parametrize("mutate,message", [
    (lambda t: np.save(t / "b.npy", np.zeros((20, 4), np.int8)), "inner dimensions differ"),
    (lambda t: np.save(t / "a.npy", np.zeros((13, 21), np.int16)), "A must have dtype int8"),
    (lambda t: np.save(t / "b.npy", np.zeros(21, np.int8)), "B must be 2-D"),
    (lambda t: (t / "a.npy").write_text("not an array"), "cannot read A file"),
    (lambda t: (t / "b.npy").unlink(), "B file .* does not exist"),
])
def test_gemm_bad_operands(operands, mutate, message, capsys):
    tmp = operands[0]
    mutate(tmp)
    assert main(["gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / "c.npy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("octet: error:")
    assert re.search(message, err[0]), err[0]


@pytest.mark.parametrize("params,message", [
    ({"shift": np.zeros(10, np.int32)}, "no 'multiplier' array"),
    ({"multiplier": np.ones(9, np.int32), "shift": np.zeros(9, np.int32)}, "9 channels"),
    ({"multiplier": np.ones(10, np.int32), "shift": np.full(10, 31, np.int32)},
     r"shift\[0\] = 31 is outside"),
    ({"multiplier": np.ones(10, np.int32), "shift": np.zeros(10, np.int32),
      "zero_point": 300}, "zero_point 300 is outside"),
])
def test_gemm_bad_requant_file(operands, params, message, capsys):
    tmp = operands[0]
    np.savez(tmp / "p.npz", **params)
    assert main(["gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / "c.npy",
                 "--requant", tmp / "p.npz"]) == 2
    err = capsys.readouterr().err
    assert message in err or re.search(message, err), err


@pytest.mark.parametrize("flags,message", [
    (["--backend", "fpga"], "invalid choice: 'fpga'"),
    (["--rows", "0"], "array size must be between 1 and 64, got 0"),
    (["--cols", "x"], "expected a whole number"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--bus-bytes", "5"], "invalid choice: 5"),
])
def test_gemm_bad_flags_no_traceback(operands, flags, message):
    tmp = operands[0]
    proc = run_cli("gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / "c.npy", *flags)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_gemm_empty_input_file_is_one_line(operands, capsys):
    tmp = operands[0]
    (tmp / "empty.npy").write_bytes(b"")
    assert main(["gemm", tmp / "empty.npy", tmp / "b.npy", "-o", tmp / "c.npy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read A file" in err[0] and "as .npy" in err[0], err


def test_gemm_output_folder_missing(operands, capsys):
    tmp = operands[0]
    assert main(["gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / "nowhere" / "c.npy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "folder" in err[0] and "does not exist" in err[0], err


def test_gemm_timeout_is_one_line(operands):
    tmp = operands[0]
    proc = run_cli("gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / "c.npy",
                   "--timeout-cycles", "10")
    assert proc.returncode == 2
    assert proc.stderr.startswith("octet: error: program at 0x") and \
        "still running after 10 cycles" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _faulting_job(device, *args, timeout_cycles=None):
    """Host code whose program the accelerator rejects (an illegal opcode at 0x100)."""
    device.write_mem(0x100, bytes(32))
    device.run(0x100, timeout_cycles=timeout_cycles)


def test_gemm_accelerator_error_is_one_line(operands, capsys, monkeypatch):
    import octet.host.compiler
    monkeypatch.setattr(octet.host.compiler, "run_gemm", _faulting_job)
    tmp = operands[0]
    assert main(["gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / "c.npy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("octet: error: accelerator error ILLEGAL_OPCODE at 0x00000100")


def test_gemm_device_memory_too_small_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((4096, 4096), np.int8))   # all of the 16 MiB
    np.save(tmp_path / "b.npy", np.zeros((4096, 1), np.int8))
    assert main(["gemm", tmp_path / "a.npy", tmp_path / "b.npy", "-o", tmp_path / "c.npy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "octet: error: device memory exhausted: 'B' needs" in err[0], err


def test_demo_golden_passes(capsys):
    assert main(["demo", "--gemm", "--backend", "golden", "--m", "9", "--k", "20", "--n", "11",
                 "--rows", "4", "--cols", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 3 and "FAIL" not in out
    assert "cycles (golden cycle model" in out


def test_generate_writes_verilog(tmp_path, capsys):
    assert main(["generate", "--rows", "3", "--cols", "2", "-o", tmp_path / "a.v"]) == 0
    text = (tmp_path / "a.v").read_text()
    assert "module octet_systolic_array" in text
    assert "input [24:0] a_stream__payload" in text   # 3 x int8 + last
    assert "output [64:0] o_stream__payload" in text  # 2 x int32 + last


def test_help_explains_every_flag():
    """Every option of every subcommand carries a help text."""
    from octet.cli import build_parser
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"octet {name}: {action.option_strings or action.dest}"
    proc = run_cli("gemm", "--help")
    assert proc.returncode == 0 and "--requant" in proc.stdout


@pytest.mark.verilator
def test_gemm_and_conv2d_verilator_equal_golden(tmp_path):
    """The CLI on the RTL of a 4x4 accelerator: results and exact counters equal golden's."""
    rng = np.random.default_rng(11)
    arrays = {"a": (13, 21), "b": (21, 10), "x": (1, 6, 5, 3), "w": (3, 3, 3, 5)}
    for name, shape in arrays.items():
        np.save(tmp_path / f"{name}.npy", rng.integers(-128, 128, shape, dtype=np.int8))
    for name, n in (("p10", 10), ("p5", 5)):
        mult, shift = golden.quantize_multiplier(np.full(n, 2e-3))
        np.savez(tmp_path / f"{name}.npz", multiplier=mult, shift=shift, zero_point=4,
                 bias=rng.integers(-500, 500, n), relu=True)
    jobs = [["gemm", "a.npy", "b.npy"], ["gemm", "a.npy", "b.npy", "--requant", "p10.npz"],
            ["conv2d", "x.npy", "w.npy", "--padding", "1"],
            ["conv2d", "x.npy", "w.npy", "--stride", "2", "--requant", "p5.npz"]]
    outs = {}
    for i, job in enumerate(jobs):
        for backend in ("golden", "verilator"):
            out = tmp_path / f"{i}-{backend}.npy"
            proc = run_cli(job[0], *(tmp_path / f if f.endswith((".npy", ".npz")) else f
                                     for f in job[1:]), "-o", out, "--backend", backend,
                           "--rows", "4", "--cols", "4", "--json")
            assert proc.returncode == 0, proc.stderr
            assert "cocotb" not in proc.stdout   # the simulation's log goes to a file
            outs[backend] = np.load(out), last_json(proc.stdout)
        np.testing.assert_array_equal(outs["verilator"][0], outs["golden"][0], str(job))
        rtl, model = outs["verilator"][1], outs["golden"][1]
        assert rtl["cycle_source"] == "rtl" and rtl["cycles"] > 0
        for key in EXACT_COUNTERS:
            assert rtl["counters"][key] == model["counters"][key], (job, key)
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "0-golden.npy"),
                                  a.astype(np.int64) @ b.astype(np.int64))
    x, w = np.load(tmp_path / "x.npy"), np.load(tmp_path / "w.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "2-golden.npy"),
                                  conv_reference(x, w, 1, 1))
