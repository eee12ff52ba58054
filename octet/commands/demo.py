"""``octet demo``: the main job, end to end on the Verilator-simulated accelerator.

Until the transformer runtime lands, the demo multiplies random int8 matrices (shapes that are
not multiples of the array) on the whole accelerator, once to int32 and once requantized to
int8, and runs a small padded convolution, all through the host compiler and the Device API.
It checks the results against int64 NumPy and the golden model, and the RTL's exact counters
against the golden simulator's.
"""

import time

import numpy as np

from octet.cli import UsageError

from .common import add_accelerator_flags, add_backend_flag

__all__ = ["add_parser", "run"]

#: The demo's convolution: X (1, 9, 9, 5), W (3, 3, 5, 6), stride 1, padding 1.
CONV = ((1, 9, 9, 5), (3, 3, 5, 6), 1, 1)
#: Counters the golden simulator predicts exactly (docs/isa.md); the RTL must match them.
EXACT_COUNTERS = ("compute_cycles", "bytes_written", "instructions")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo", help="run the built-in demo on the simulated accelerator",
        description="Multiply random int8 matrices on the simulated accelerator (Verilator "
                    "RTL by default), to int32 and requantized to int8, and run a small "
                    "convolution; check the results bit for bit against int64 NumPy and the "
                    "golden model. Prints the checks and cycle counts.")
    p.add_argument("--m", type=int, default=48, help="rows of A (default 48)")
    p.add_argument("--k", type=int, default=100, help="columns of A, rows of B (default 100)")
    p.add_argument("--n", type=int, default=36, help="columns of B (default 36)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_backend_flag(p)
    p.set_defaults(backend="verilator")
    add_accelerator_flags(p)
    p.set_defaults(run=run)


def _conv_reference(x, w, stride, padding):
    kh, kw = w.shape[:2]
    xp = np.pad(x.astype(np.int64), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    oh = (xp.shape[1] - kh) // stride + 1
    ow = (xp.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            rows = slice(ky, ky + stride * (oh - 1) + 1, stride)
            cols = slice(kx, kx + stride * (ow - 1) + 1, stride)
            out += xp[:, rows, cols] @ w[ky, kx].astype(np.int64)
    return out


def _check(label, ok):
    print(f"  {label:<52} {'PASS' if ok else 'FAIL'}")
    return ok


def run(args):
    from octet.host.compiler import run_conv2d, run_gemm
    from octet.host.device import GoldenDevice
    from octet.host.devices import accelerator_config, open_device
    from octet.numerics import RequantParams
    from octet.sim import golden

    for name in ("m", "k", "n"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, not {getattr(args, name)}")
    config = accelerator_config(args.rows, args.cols, args.bus_bytes)
    rng = np.random.default_rng(args.seed)
    a = rng.integers(-128, 128, (args.m, args.k), dtype=np.int8)
    b = rng.integers(-128, 128, (args.k, args.n), dtype=np.int8)
    scale = rng.uniform(0.5, 2.0, args.n) / (128 * np.sqrt(args.k) * 20)
    mult, shift = golden.quantize_multiplier(scale)
    params = RequantParams.create(mult, shift, rng.integers(-1000, 1000, args.n), -5, True)
    x_shape, w_shape, stride, padding = CONV
    x = rng.integers(-128, 128, x_shape, dtype=np.int8)
    w = rng.integers(-128, 128, w_shape, dtype=np.int8)
    jobs = [("GEMM, int32 out", run_gemm, (a, b)),
            ("GEMM + requantization, int8 out", run_gemm, (a, b, params)),
            (f"conv2d {x_shape} * {w_shape}, padding {padding}", run_conv2d,
             (x, w, stride, padding))]

    print(f"Octet demo: {args.m}x{args.k} @ {args.k}x{args.n} int8 GEMM (+ requantization) "
          f"and a 3x3 convolution on a {config.rows}x{config.cols} accelerator "
          f"({args.backend} backend)")
    model = [op(GoldenDevice(config, timed=False), *fargs) for _, op, fargs in jobs]
    start = time.monotonic()
    with open_device(args.backend, config) as device:
        results = [device.call(op, *fargs, timeout_cycles=10 * est.cycles + 100_000)
                   for (_, op, fargs), (_, est) in zip(jobs, model, strict=True)]
    wall = time.monotonic() - start

    reference = a.astype(np.int64) @ b.astype(np.int64)
    ok = [_check("int32 GEMM == int64 NumPy matmul:",
                 np.array_equal(results[0][0].astype(np.int64), reference)),
          _check("int8 GEMM == golden TFLite requantization:",
                 np.array_equal(results[1][0], golden.requantize(reference, params))),
          _check("int32 conv2d == int64 NumPy convolution:",
                 np.array_equal(results[2][0], _conv_reference(x, w, stride, padding)))]
    if args.backend != "golden":
        ok.append(_check("RTL exact counters == golden simulator's:",
                         all(r[1].counters[c] == e[1].counters[c] for r, e in
                             zip(results, model, strict=True) for c in EXACT_COUNTERS)))
    for (label, _, _), (_, stats), (_, est) in zip(jobs, results, model, strict=True):
        c = stats.counters
        print(f"  {label}: {c['cycles']} cycles (golden cycle model {est.cycles}, ideal "
              f"{stats.ideal_cycles:.0f}, utilization {stats.utilization:.1%}), "
              f"{c['bytes_read'] + c['bytes_written']} DRAM bytes")
    print(f"  wall time: {wall:.1f} s")
    if not all(ok):
        print("demo FAILED: results differ from the reference")
        return 1
    return 0
