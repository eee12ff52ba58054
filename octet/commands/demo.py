"""``octet demo``: the main job, end to end on the Verilator-simulated accelerator.

Until the transformer runtime lands, the demo multiplies random int8 matrices (shapes that are
not multiples of the array) on the RTL, requantizes the result, and checks both against
int64 NumPy and the golden model.
"""

import time

import numpy as np

from octet.cli import UsageError

from .common import add_array_flags, add_backend_flag

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo", help="run the built-in demo on the simulated accelerator",
        description="Multiply random int8 matrices on the simulated array (Verilator RTL by "
                    "default), requantize to int8, and check the results bit for bit against "
                    "int64 NumPy and the golden model. Prints the checks and cycle counts.")
    p.add_argument("--m", type=int, default=48, help="rows of A (default 48)")
    p.add_argument("--k", type=int, default=100, help="columns of A, rows of B (default 100)")
    p.add_argument("--n", type=int, default=36, help="columns of B (default 36)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_backend_flag(p)
    p.set_defaults(backend="verilator")
    add_array_flags(p)
    p.set_defaults(run=run)


def run(args):
    from octet.host.backend import GemmResult, make_backend
    from octet.numerics import RequantParams
    from octet.sim import golden

    for name in ("m", "k", "n"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, not {getattr(args, name)}")
    rng = np.random.default_rng(args.seed)
    a = rng.integers(-128, 128, (args.m, args.k), dtype=np.int8)
    b = rng.integers(-128, 128, (args.k, args.n), dtype=np.int8)
    scale = rng.uniform(0.5, 2.0, args.n) / (128 * np.sqrt(args.k) * 20)
    mult, shift = golden.quantize_multiplier(scale)
    params = RequantParams.create(mult, shift, rng.integers(-1000, 1000, args.n), -5, True)

    print(f"Octet demo: {args.m}x{args.k} @ {args.k}x{args.n} int8 GEMM + requantization "
          f"on a {args.rows}x{args.cols} systolic array ({args.backend} backend)")
    start = time.monotonic()
    backend = make_backend(args.backend, args.rows, args.cols)
    raw = backend.gemm(a, b)
    quant = backend.gemm(a, b, params)
    wall = time.monotonic() - start

    reference = a.astype(np.int64) @ b.astype(np.int64)
    ok_raw = np.array_equal(raw.output.astype(np.int64), reference)
    ok_q = np.array_equal(quant.output, golden.requantize(reference.astype(np.int32), params))
    ideal = GemmResult.ideal_cycles(args.m, args.k, args.n, args.rows, args.cols)
    model = golden.array_cycles(args.m, args.k, args.n, args.rows, args.cols)
    print(f"  int32 result == int64 NumPy matmul:          {'PASS' if ok_raw else 'FAIL'}")
    print(f"  int8 result  == golden TFLite requantization: {'PASS' if ok_q else 'FAIL'}")
    print(f"  GEMM cycles: {raw.gemm_cycles} (cycle model {model}, ideal {ideal:.0f}, "
          f"array utilization {ideal / raw.gemm_cycles:.1%})")
    print(f"  requantization cycles: {quant.requant_cycles}")
    print(f"  wall time: {wall:.1f} s")
    if not (ok_raw and ok_q):
        print("demo FAILED: results differ from the reference")
        return 1
    return 0
