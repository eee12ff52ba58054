"""``octet gemm``: an int8 GEMM on the accelerator, on the golden model or the RTL.

The operands are compiled into an Octet program by :func:`octet.host.compiler.run_gemm`, which
runs on the device of the chosen backend (``device.call``), so both backends execute the same
program; cycles and traffic come from the accelerator's performance counters.
"""

from octet.cli import UsageError

from .common import check_output_path, load_npy, load_requant, print_json, save_npy
from .device_run import add_device_flags, config_from_args, cost_report, cost_summary, run_on_device

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "gemm", help="multiply int8 matrices on the accelerator",
        description="Compute C = A @ B with A int8 (M, K) and B int8 (K, N) of any size on the "
                    "accelerator with an R x C array: the host compiles a program (tiling, "
                    "double buffering) and runs it on the chosen backend. The output is int32 "
                    "(M, N), or int8 with --requant. Prints a summary; --json adds one JSON "
                    "object as the last line of stdout.")
    p.add_argument("a", metavar="A.npy", help="left operand, int8 of shape (M, K)")
    p.add_argument("b", metavar="B.npy", help="right operand, int8 of shape (K, N)")
    p.add_argument("-o", "--output", required=True, metavar="C.npy",
                   help="where to write the result (.npy)")
    p.add_argument("--requant", metavar="PARAMS.npz",
                   help="requantize the int32 result to int8 with per-channel parameters: "
                        "the .npz holds 'multiplier' and 'shift' (int32, length N) and "
                        "optionally 'bias' (int32, length N), 'zero_point' (int) and 'relu' "
                        "(bool); semantics as TFLite (docs/numerics.md)")
    add_device_flags(p)
    p.set_defaults(run=run)


def run(args):
    from octet.host.compiler import run_gemm
    from octet.host.tiling import check_gemm_operands

    a = load_npy(args.a, "A")
    b = load_npy(args.b, "B")
    check_gemm_operands(a, b)
    requant = load_requant(args.requant) if args.requant else None
    if requant is not None and requant.channels != b.shape[1]:
        raise UsageError(f"requant parameters have {requant.channels} channels but B has "
                         f"N = {b.shape[1]} columns")
    check_output_path(args.output)
    config = config_from_args(args)
    out, stats, wall = run_on_device(args, config, run_gemm, a, b, requant)
    save_npy(args.output, out)
    m, k = a.shape
    n = b.shape[1]
    report = cost_report(args, config, stats, wall)
    print(f"{args.backend}: {m}x{k} @ {k}x{n} on a {config.rows}x{config.cols} array -> "
          f"{args.output} ({out.dtype}); {cost_summary(report)}")
    if args.json:
        print_json({**report, "m": m, "k": k, "n": n, "dtype": str(out.dtype)})
