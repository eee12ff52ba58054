"""``octet demo``: the main job, end to end on the Verilator-simulated accelerator.

By default the demo generates text with the shipped transformer (W8A8) on the RTL of the
whole accelerator (``octet run``'s runtime: weights resident in device memory, every matrix
product an accelerator program), checks that the bytes equal those of the same generation on
the golden model, and prints the text and the cost summary. ``--gemm`` runs the earlier
check instead: random int8 matrices (shapes that are not multiples of the array) multiplied
to int32 and requantized to int8, and a small padded convolution, checked against int64
NumPy and the golden model, with the RTL's exact counters against the golden simulator's.
"""

import time

import numpy as np

from octet.cli import UsageError

from .common import add_accelerator_flags, add_backend_flag, open_backend

__all__ = ["add_parser", "run"]

#: The demo's convolution: X (1, 9, 9, 5), W (3, 3, 5, 6), stride 1, padding 1.
CONV = ((1, 9, 9, 5), (3, 3, 5, 6), 1, 1)
#: Counters the golden simulator predicts exactly (docs/isa.md); the RTL must match them.
EXACT_COUNTERS = ("compute_cycles", "bytes_written", "instructions")


#: The transformer demo's default prompt and length.
PROMPT = "def __init__(s"
MAX_TOKENS = 16


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo", help="run the built-in demo on the simulated accelerator",
        description="Generate text with the quantized transformer on the simulated "
                    "accelerator (Verilator RTL by default), check it byte for byte against "
                    "the golden model, and print the text with time to first token, time per "
                    "token (cycles, at 100 MHz, wall) and array utilization. With --gemm: "
                    "multiply random int8 matrices (to int32 and requantized to int8) and run "
                    "a small convolution instead, checked bit for bit against int64 NumPy "
                    "and the golden model.")
    p.add_argument("--prompt", default=PROMPT, metavar="TEXT",
                   help=f"prompt of the transformer demo (default {PROMPT!r})")
    p.add_argument("--max-tokens", type=int, default=MAX_TOKENS, metavar="N",
                   help=f"bytes to generate (default {MAX_TOKENS})")
    p.add_argument("--gemm", action="store_true",
                   help="run the GEMM and convolution check instead of the transformer")
    p.add_argument("--m", type=int, default=48, help="--gemm: rows of A (default 48)")
    p.add_argument("--k", type=int, default=100,
                   help="--gemm: columns of A, rows of B (default 100)")
    p.add_argument("--n", type=int, default=36, help="--gemm: columns of B (default 36)")
    p.add_argument("--seed", type=int, default=0, help="--gemm: random seed (default 0)")
    add_backend_flag(p)
    p.set_defaults(backend="verilator")
    add_accelerator_flags(p)
    p.set_defaults(run=run)


def _transformer_demo(args):
    import sys

    from octet.host.device import GoldenDevice
    from octet.host.devices import accelerator_config
    from octet.quant.prepare import prepare_model

    from .run import VERILATOR_TIMEOUT_CYCLES, format_summary, generate_text, summarize

    prompt = args.prompt.encode("utf-8")
    if not prompt:
        raise UsageError("--prompt must not be empty")
    if args.max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, not {args.max_tokens}")
    config = accelerator_config(args.rows, args.cols, args.bus_bytes)
    start = time.monotonic()
    prepared = prepare_model(log=lambda m: print(f"octet: {m}", file=sys.stderr, flush=True))
    if len(prompt) > prepared.qmodel.config.context:
        raise UsageError(f"the prompt has {len(prompt)} bytes but the model's context holds "
                         f"{prepared.qmodel.config.context}")
    print(f"Octet demo: {prepared.description} generating {args.max_tokens} bytes on a "
          f"{config.rows}x{config.cols} accelerator ({args.backend} backend), greedy")
    golden = generate_text(GoldenDevice(config, timed=False), prepared.qmodel, prompt,
                           args.max_tokens)
    timeout = None if args.backend == "golden" else VERILATOR_TIMEOUT_CYCLES
    with open_backend(args, config) as device:
        result = generate_text(device, prepared.qmodel, prompt, args.max_tokens,
                               out=sys.stdout, timeout_cycles=timeout)
    wall = time.monotonic() - start
    print()
    ok = _check(f"{args.backend} bytes == golden model's bytes:", result.tokens == golden.tokens)
    report = summarize(result, config)
    for line in format_summary(report):
        print(f"  {line}")
    if args.backend != "golden":
        model = summarize(golden, config)
        print(f"  golden cycle model: time to first token {model['ttft_cycles']:,} cycles, "
              f"per output token {model['tpot_cycles'] or 0:,.0f} cycles "
              f"({model['roofline_fraction'] or 0:.1%} of the roofline)")
    print(f"  wall time: {wall:.1f} s (model preparation and golden run included)")
    if not ok:
        print("demo FAILED: the accelerator's text differs from the golden model's")
        return 1
    return 0


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
    if not args.gemm:
        return _transformer_demo(args)
    return _gemm_demo(args)


def _gemm_demo(args):
    from octet.host.compiler import run_conv2d, run_gemm
    from octet.host.device import GoldenDevice
    from octet.host.devices import accelerator_config
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
    with open_backend(args, config) as device:
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
