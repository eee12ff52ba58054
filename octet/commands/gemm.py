"""``octet gemm``: an int8 GEMM on the array, on the golden model or the RTL."""

import time

import numpy as np

from octet.cli import UsageError

from .common import add_array_flags, add_backend_flag, load_npy, load_requant, print_json

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "gemm", help="multiply int8 matrices on the accelerator",
        description="Compute C = A @ B with A int8 (M, K) and B int8 (K, N) of any size, "
                    "tiled onto the R x C array. The output is int32 (M, N), or int8 with "
                    "--requant. Prints a summary; --json adds one JSON object as the last "
                    "line of stdout.")
    p.add_argument("a", metavar="A.npy", help="left operand, int8 of shape (M, K)")
    p.add_argument("b", metavar="B.npy", help="right operand, int8 of shape (K, N)")
    p.add_argument("-o", "--output", required=True, metavar="C.npy",
                   help="where to write the result (.npy)")
    p.add_argument("--requant", metavar="PARAMS.npz",
                   help="requantize the int32 result to int8 with per-channel parameters: "
                        "the .npz holds 'multiplier' and 'shift' (int32, length N) and "
                        "optionally 'bias' (int32, length N), 'zero_point' (int) and 'relu' "
                        "(bool); semantics as TFLite (docs/numerics.md)")
    add_backend_flag(p)
    add_array_flags(p)
    p.add_argument("--json", action="store_true",
                   help="print a JSON object as the last line of stdout: backend, shape, cycles "
                        "(golden: from its cycle model), ideal_cycles = M*K*N/(R*C), "
                        "utilization = ideal_cycles/cycles, and more")
    p.set_defaults(run=run)


def run(args):
    from octet.host.backend import GemmResult, make_backend
    from octet.host.tiling import check_gemm_operands

    a = load_npy(args.a, "A")
    b = load_npy(args.b, "B")
    check_gemm_operands(a, b)
    requant = load_requant(args.requant) if args.requant else None
    if requant is not None and requant.channels != b.shape[1]:
        raise UsageError(f"requant parameters have {requant.channels} channels but B has "
                         f"N = {b.shape[1]} columns")
    start = time.monotonic()
    backend = make_backend(args.backend, args.rows, args.cols)
    result = backend.gemm(a, b, requant)
    wall = time.monotonic() - start
    try:
        np.save(args.output, result.output)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc}") from None
    m, k = a.shape
    n = b.shape[1]
    ideal = GemmResult.ideal_cycles(m, k, n, args.rows, args.cols)
    util = ideal / result.cycles
    print(f"{args.backend}: {m}x{k} @ {k}x{n} on a {args.rows}x{args.cols} array -> "
          f"{args.output} ({result.output.dtype}); {result.cycles} cycles "
          f"(GEMM {result.gemm_cycles}, requant {result.requant_cycles}), "
          f"ideal {ideal:.0f}, utilization {util:.1%}; {wall:.1f} s wall")
    if args.json:
        print_json({
            "backend": args.backend, "rows": args.rows, "cols": args.cols,
            "m": m, "k": k, "n": n, "dtype": str(result.output.dtype),
            "cycles": result.cycles, "gemm_cycles": result.gemm_cycles,
            "requant_cycles": result.requant_cycles, "ideal_cycles": ideal,
            "utilization": util, "array_utilization": ideal / result.gemm_cycles,
            "cycle_source": "cycle model" if args.backend == "golden"
            else "rtl", "wall_s": round(wall, 3), "output": str(args.output),
        })
