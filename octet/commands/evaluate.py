"""``octet eval``: bits per byte of the transformer on held-out text, fp32 against W8A8 (+ pruning).

The quantized variants run through the integer reference, i.e. the exact arithmetic the
accelerator's GEMM + requantization computes (:mod:`octet.quant.evaluate`).
"""

import time

from .common import print_json

__all__ = ["add_parser", "run"]


def _positive(text):
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(subparsers):
    from octet.quant.evaluate import DEFAULT_WINDOWS
    from octet.quant.model_file import DEFAULT_MODEL
    p = subparsers.add_parser(
        "eval", help="bits per byte of the transformer: fp32 vs W8A8 vs pruned W8A8",
        description="Measure bits per byte of the byte-level transformer on held-out Python "
                    "standard-library files (never seen in training): the fp32 NumPy "
                    "reference, W8A8 (integer reference = the accelerator's arithmetic), and "
                    "W8A8 after 50% unstructured (Wanda) and 2:4 structured pruning. Prints a "
                    "table; --json adds one JSON object as the last line of stdout.")
    p.add_argument("--model", default=None, metavar="FILE.octm",
                   help=f"model file (default: the shipped {DEFAULT_MODEL.name})")
    p.add_argument("--windows", type=_positive, default=DEFAULT_WINDOWS, metavar="N",
                   help=f"held-out windows of one context each (default {DEFAULT_WINDOWS}; "
                        "each scores 256 bytes)")
    p.add_argument("--all", action="store_true", dest="extended",
                   help="also report magnitude pruning and the pruned fp32 models")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object as the last line of stdout with keys metric "
                        "('bits_per_byte'), fp32, w8a8, w8a8_sparse50, w8a8_2of4 (and the "
                        "--all variants)")
    p.set_defaults(run=run)


def run(args):
    from octet.quant.evaluate import evaluate, markdown_table

    start = time.monotonic()
    results, info = evaluate(args.model, windows=args.windows, extended=args.extended,
                             log=lambda msg: print(msg, flush=True))
    print(f"{info['bytes_scored']} held-out bytes in {info['windows']} windows, "
          f"{info['calibration_tokens']} calibration tokens, "
          f"{time.monotonic() - start:.1f} s")
    print(markdown_table(results))
    if args.json:
        print_json(results)
