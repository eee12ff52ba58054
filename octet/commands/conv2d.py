"""``octet conv2d``: an int8 NHWC convolution on the accelerator, golden model or RTL.

The convolution is compiled by :func:`octet.host.compiler.run_conv2d` (IM2COL on the
accelerator, or host im2col + GEMM when IM2COL's fields cannot express it; the JSON's
``fallback`` says why) and runs on the device of the chosen backend.
"""

from octet.cli import UsageError

from .common import check_output_path, load_npy, load_requant, print_json, save_npy
from .device_run import add_device_flags, config_from_args, cost_report, cost_summary, run_on_device

__all__ = ["add_parser", "run", "check_conv_inputs"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "conv2d", help="convolve an int8 NHWC image on the accelerator",
        description="Compute Y = conv2d(X, W) with X int8 NHWC (N, H, W, C) (or (H, W, C), "
                    "one image) and W int8 (KH, KW, C, O), zero padding on every side, on the "
                    "accelerator with an R x C array. Y is NHWC int32 (N, OH, OW, O), or int8 "
                    "with --requant; OH = (H + 2P - KH) // S + 1, OW likewise. Prints a "
                    "summary; --json adds one JSON object as the last line of stdout.")
    p.add_argument("x", metavar="X.npy", help="input image(s), int8 of shape (N, H, W, C) or "
                                              "(H, W, C)")
    p.add_argument("w", metavar="W.npy", help="weights, int8 of shape (KH, KW, C, O)")
    p.add_argument("-o", "--output", required=True, metavar="Y.npy",
                   help="where to write the result (.npy), NHWC with the rank of X")
    p.add_argument("--stride", type=int, default=1, metavar="S",
                   help="stride in both directions (at least 1, default 1)")
    p.add_argument("--padding", type=int, default=0, metavar="P",
                   help="zero pixels added on each side of the image (at least 0, default 0)")
    p.add_argument("--requant", metavar="PARAMS.npz",
                   help="requantize the int32 result to int8 with per-output-channel "
                        "parameters: 'multiplier' and 'shift' (int32, length O), optional "
                        "'bias' (int32, length O), 'zero_point' (int), 'relu' (bool); "
                        "semantics as TFLite (docs/numerics.md)")
    add_device_flags(p)
    p.set_defaults(run=run)


def _check_array(name, t, ranks, layout):
    if t.dtype != "int8":
        raise UsageError(f"{name} must have dtype int8, not {t.dtype}")
    if t.ndim not in ranks:
        raise UsageError(f"{name} must be {layout}, not {t.ndim}-D with shape {t.shape}")
    if 0 in t.shape:
        raise UsageError(f"{name} must not be empty, but has shape {t.shape}")


def check_conv_inputs(x, w, stride, padding):
    """Raise :class:`UsageError` naming the problem unless the convolution is well formed.

    Returns the output shape ``(N, OH, OW, O)`` (N = 1 for a 3-D ``x``).
    """
    _check_array("X", x, (3, 4), "4-D (N, H, W, C) or 3-D (H, W, C)")
    _check_array("W", w, (4,), "4-D (KH, KW, C, O)")
    if stride < 1:
        raise UsageError(f"--stride must be at least 1, not {stride}")
    if padding < 0:
        raise UsageError(f"--padding must not be negative, not {padding}")
    h, wd, c = x.shape[-3:]
    kh, kw, wc, o = w.shape
    if c != wc:
        raise UsageError(f"channels differ: X is {x.shape} (C = {c}) but W is {w.shape} "
                         f"(C = {wc})")
    ph, pw = h + 2 * padding, wd + 2 * padding
    if kh > ph or kw > pw:
        raise UsageError(f"the {kh}x{kw} kernel is larger than the {h}x{wd} input padded by "
                         f"{padding} on each side ({ph}x{pw})")
    n = x.shape[0] if x.ndim == 4 else 1
    return n, (ph - kh) // stride + 1, (pw - kw) // stride + 1, o


def run(args):
    from octet.host.compiler import run_conv2d

    x = load_npy(args.x, "X")
    w = load_npy(args.w, "W")
    n, oh, ow, o = check_conv_inputs(x, w, args.stride, args.padding)
    requant = load_requant(args.requant) if args.requant else None
    if requant is not None and requant.channels != o:
        raise UsageError(f"requant parameters have {requant.channels} channels but W has "
                         f"O = {o} output channels")
    check_output_path(args.output)
    config = config_from_args(args)
    out, stats, wall = run_on_device(args, config, run_conv2d, x, w, args.stride, args.padding,
                                     requant)
    save_npy(args.output, out)
    report = cost_report(args, config, stats, wall)
    kh, kw, c, _ = w.shape
    print(f"{args.backend}: conv2d {x.shape} * {w.shape}, stride {args.stride}, padding "
          f"{args.padding} on a {config.rows}x{config.cols} array -> {args.output} "
          f"{out.shape} ({out.dtype}); {cost_summary(report)}"
          + (f"; host im2col: {stats.fallback}" if stats.fallback else ""))
    if args.json:
        print_json({**report, "n": n, "h": x.shape[-3], "w": x.shape[-2], "c": c, "kh": kh,
                    "kw": kw, "o": o, "oh": oh, "ow": ow, "stride": args.stride,
                    "padding": args.padding, "shape": list(out.shape),
                    "dtype": str(out.dtype), "fallback": stats.fallback})
