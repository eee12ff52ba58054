"""``octet conv2d``: NHWC convolutions on the golden device against an int64 NumPy convolution.

Random geometry (batch, odd sizes, stride, padding, 3-D input), requantization against
``golden.requantize``, the host-im2col fallback, the cost report, and bad input: every problem
exits with status 2 and one line naming it. The RTL run is in ``tests/test_cli.py``'s
Verilator-marked test.
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


def conv_reference(x, w, stride, padding):
    """int64 NHWC convolution with HWIO weights, written directly (loops over the kernel)."""
    x4 = (x if x.ndim == 4 else x[None]).astype(np.int64)
    kh, kw = w.shape[:2]
    xp = np.pad(x4, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    oh = (xp.shape[1] - kh) // stride + 1
    ow = (xp.shape[2] - kw) // stride + 1
    out = np.zeros((x4.shape[0], oh, ow, w.shape[3]), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            for oy in range(oh):
                for ox in range(ow):
                    out[:, oy, ox] += xp[:, oy * stride + ky, ox * stride + kx] @ \
                        w[ky, kx].astype(np.int64)
    return out if x.ndim == 4 else out[0]


def save(tmp, **arrays):
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", array)


def conv(tmp, *flags, out="y.npy"):
    return main(["conv2d", tmp / "x.npy", tmp / "w.npy", "-o", tmp / out, *map(str, flags)])


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,rows,cols", [
    ((1, 5, 5, 1), (1, 1, 1, 1), 1, 0, 8, 8),
    ((2, 7, 6, 3), (3, 3, 3, 5), 1, 1, 4, 4),
    ((1, 9, 11, 10), (3, 2, 10, 9), 2, 2, 8, 8),
    ((3, 4, 4, 17), (4, 4, 17, 3), 3, 0, 5, 3),
    ((8, 8, 2), (5, 5, 2, 12), 1, 2, 8, 8),          # 3-D input: one image
    ((1, 3, 3, 4), (3, 3, 4, 2), 1, 0, 1, 2),        # one output pixel
    ((1, 10, 3, 6), (2, 3, 6, 70), 2, 1, 16, 64),
])
def test_conv2d_golden_equals_int64_numpy(tmp_path, capsys, x_shape, w_shape, stride, padding,
                                          rows, cols):
    rng = np.random.default_rng(sum(x_shape) * 100 + sum(w_shape))
    x = rng.integers(-128, 128, x_shape, dtype=np.int8)
    w = rng.integers(-128, 128, w_shape, dtype=np.int8)
    save(tmp_path, x=x, w=w)
    assert conv(tmp_path, "--stride", stride, "--padding", padding, "--rows", rows,
                "--cols", cols, "--json") == 0
    y = np.load(tmp_path / "y.npy")
    expect = conv_reference(x, w, stride, padding)
    assert y.dtype == np.int32 and y.shape == expect.shape
    np.testing.assert_array_equal(y, expect)
    report = last_json(capsys.readouterr().out)
    n = x_shape[0] if len(x_shape) == 4 else 1
    oh, ow = expect.shape[-3:-1]
    kh, kw, c, o = w_shape
    assert report["ideal_cycles"] == n * oh * ow * kh * kw * c * o / (rows * cols)
    assert report["utilization"] == pytest.approx(report["ideal_cycles"] / report["cycles"])
    assert report["counters"]["cycles"] == report["cycles"]
    assert report["dram_bytes"] == report["counters"]["bytes_read"] + \
        report["counters"]["bytes_written"]
    assert report["bandwidth_utilization"] == pytest.approx(
        report["dram_bytes"] / (report["cycles"] * report["bus_bytes"]))
    assert (report["n"], report["oh"], report["ow"], report["o"]) == (n, oh, ow, o)
    assert report["shape"] == list(expect.shape) and report["fallback"] is None


def test_conv2d_requant_equals_golden_requantize(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (2, 6, 7, 5), dtype=np.int8)
    w = rng.integers(-128, 128, (3, 3, 5, 6), dtype=np.int8)
    mult, shift = golden.quantize_multiplier(np.linspace(1e-4, 3e-3, 6))
    bias = rng.integers(-2000, 2000, 6)
    save(tmp_path, x=x, w=w)
    np.savez(tmp_path / "p.npz", multiplier=mult, shift=shift, bias=bias, zero_point=-3,
             relu=True)
    assert conv(tmp_path, "--stride", 2, "--padding", 1, "--requant", tmp_path / "p.npz",
                "--bus-bytes", 16) == 0
    params = RequantParams.create(mult, shift, bias, -3, True)
    expect = golden.requantize(conv_reference(x, w, 2, 1), params)
    got = np.load(tmp_path / "y.npy")
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, expect)


def test_conv2d_host_im2col_fallback(tmp_path, capsys):
    """A stride IM2COL cannot encode (> 15) runs as host im2col + GEMM, still exact."""
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (1, 40, 40, 2), dtype=np.int8)
    w = rng.integers(-128, 128, (2, 2, 2, 3), dtype=np.int8)
    save(tmp_path, x=x, w=w)
    assert conv(tmp_path, "--stride", 16, "--json") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), conv_reference(x, w, 16, 0))
    assert "stride 16 exceeds 15" in last_json(capsys.readouterr().out)["fallback"]


def _bad(tmp, mutate):
    save(tmp, x=np.zeros((1, 5, 5, 3), np.int8), w=np.zeros((3, 3, 3, 4), np.int8))
    flags = mutate(tmp)
    return flags if isinstance(flags, list) else []


@pytest.mark.parametrize("mutate,message", [
    (lambda t: save(t, x=np.zeros((1, 5, 5, 3), np.int16)), "X must have dtype int8, not int16"),
    (lambda t: save(t, w=np.zeros((3, 3, 3, 4), np.uint8)), "W must have dtype int8, not uint8"),
    (lambda t: save(t, x=np.zeros((5, 5), np.int8)), r"X must be 4-D \(N, H, W, C\) or 3-D"),
    (lambda t: save(t, w=np.zeros((3, 3, 3), np.int8)), r"W must be 4-D \(KH, KW, C, O\)"),
    (lambda t: save(t, x=np.zeros((0, 5, 5, 3), np.int8)), "X must not be empty"),
    (lambda t: save(t, w=np.zeros((3, 3, 2, 4), np.int8)),
     r"channels differ: X is \(1, 5, 5, 3\) \(C = 3\) but W is \(3, 3, 2, 4\) \(C = 2\)"),
    (lambda t: save(t, w=np.zeros((6, 3, 3, 4), np.int8)),
     r"the 6x3 kernel is larger than the 5x5 input padded by 0 on each side \(5x5\)"),
    (lambda t: ["--stride", "0"], "--stride must be at least 1, not 0"),
    (lambda t: ["--padding", "-1"], "--padding must not be negative, not -1"),
    (lambda t: (t / "x.npy").write_text("nope"), "cannot read X file"),
    (lambda t: (t / "w.npy").unlink(), "W file .* does not exist"),
    (lambda t: np.savez(t / "p.npz", multiplier=np.ones(3, np.int32),
                        shift=np.zeros(3, np.int32)) or ["--requant", t / "p.npz"],
     "requant parameters have 3 channels but W has O = 4 output channels"),
    (lambda t: np.savez(t / "p.npz", shift=np.zeros(4, np.int32)) or ["--requant", t / "p.npz"],
     "no 'multiplier' array"),
    (lambda t: np.savez(t / "p.npz", multiplier=np.ones(4, np.int32),
                        shift=np.full(4, -40, np.int32)) or ["--requant", t / "p.npz"],
     r"shift\[0\] = -40 is outside"),
    (lambda t: ["--requant", t / "missing.npz"], "requant file .* does not exist"),
    (lambda t: ["--rows", "65"], None),   # argparse: exit status 2 as SystemExit
])
def test_conv2d_bad_input_one_line(tmp_path, capsys, mutate, message):
    flags = _bad(tmp_path, mutate)
    if message is None:
        with pytest.raises(SystemExit) as exc:
            conv(tmp_path, *flags)
        assert exc.value.code == 2
        assert "array size must be between 1 and 64, got 65" in capsys.readouterr().err
        return
    assert conv(tmp_path, *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("octet: error:"), err
    assert re.search(message, err[0]), err[0]


def test_conv2d_errors_have_no_traceback(tmp_path):
    _bad(tmp_path, lambda t: save(t, w=np.zeros((3, 3, 2, 4), np.int8)))
    proc = subprocess.run([sys.executable, "-m", "octet", "conv2d", tmp_path / "x.npy",
                           tmp_path / "w.npy", "-o", tmp_path / "y.npy"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("octet: error: channels differ")
    assert "Traceback" not in proc.stderr
