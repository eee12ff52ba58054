"""The ``octet`` command line: results against int64 NumPy / the golden model, and bad input.

Bad input must exit non-zero with one line naming the problem and no traceback.
"""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from octet.cli import main
from octet.numerics import RequantParams
from octet.sim import golden


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


def test_gemm_golden_equals_int64_numpy(operands, capsys):
    tmp, a, b = operands
    assert main(["gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / "c.npy", "--json",
                 "--rows", "4", "--cols", "3"]) == 0
    out = np.load(tmp / "c.npy")
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, a.astype(np.int64) @ b.astype(np.int64))
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["backend"] == "golden"
    assert report["ideal_cycles"] == 13 * 21 * 10 / 12
    assert report["cycles"] == golden.array_cycles(13, 21, 10, 4, 3)
    assert report["utilization"] == pytest.approx(report["ideal_cycles"] / report["cycles"])


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
])
def test_gemm_bad_flags_no_traceback(operands, flags, message):
    tmp = operands[0]
    proc = run_cli("gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / "c.npy", *flags)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


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
def test_gemm_verilator_equals_golden_and_numpy(operands):
    tmp, a, b = operands
    mult, shift = golden.quantize_multiplier(np.full(10, 2e-3))
    np.savez(tmp / "p.npz", multiplier=mult, shift=shift, zero_point=4)
    for requant in ([], ["--requant", tmp / "p.npz"]):
        outs = {}
        for backend in ("golden", "verilator"):
            proc = run_cli("gemm", tmp / "a.npy", tmp / "b.npy", "-o", tmp / f"{backend}.npy",
                           "--backend", backend, "--rows", "4", "--cols", "4", "--json",
                           *requant)
            assert proc.returncode == 0, proc.stderr
            outs[backend] = (np.load(tmp / f"{backend}.npy"),
                             json.loads(proc.stdout.strip().splitlines()[-1]))
        np.testing.assert_array_equal(outs["verilator"][0], outs["golden"][0])
        # the golden cycle model is exact for the array pass with an always-ready host
        assert outs["verilator"][1]["cycles"] == outs["golden"][1]["cycles"]
    params = RequantParams.create(mult, shift, zero_point=4)
    expect = golden.requantize(a.astype(np.int64) @ b.astype(np.int64), params)
    np.testing.assert_array_equal(np.load(tmp / "golden.npy"), expect)
