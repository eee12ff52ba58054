"""``octet run``: generate text with the quantized transformer on the accelerator.

The model (the shipped one, or ``--model``; optionally pruned with ``--sparsity``) is
quantized to W8A8, placed once in device memory, and generated from by
:func:`octet.host.runtime.generate_on_device` on the chosen backend: on ``verilator`` the
whole loop runs inside the simulation (one round trip), with the bytes streamed back as they
are produced. The summary converts the accelerator's cycle counters at the design's target
clock (:data:`octet.host.runtime.CLOCK_HZ`) and compares decoding with the memory-bound
roofline (weight bytes per token / bus bytes per cycle).
"""

import argparse
import codecs
import math
import sys
import time

from octet.cli import UsageError

from .common import add_accelerator_flags, add_backend_flag, open_backend, print_json

__all__ = ["add_parser", "run", "summarize", "format_summary", "generate_text",
           "VERILATOR_TIMEOUT_CYCLES"]

#: Per-program timeout on the RTL (a step's largest program needs well under 1 M cycles).
VERILATOR_TIMEOUT_CYCLES = 20_000_000


def _count(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _temperature(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def add_parser(subparsers):
    from octet.quant.prepare import SPARSITY
    p = subparsers.add_parser(
        "run", help="generate text with the quantized transformer on the accelerator",
        description="Continue a prompt with the shipped byte-level transformer (W8A8) running "
                    "on the accelerator: weights and requantization tables are placed in "
                    "device memory once, every matrix product runs as an accelerator program, "
                    "LayerNorm / softmax / GELU / residual run on the host in exact integer "
                    "arithmetic. Streams the text, then a summary (time to first token and "
                    "per output token in cycles, at the design's 100 MHz target clock and in "
                    "wall time, array utilization, bytes moved per token); --json adds one "
                    "JSON object as the last line of stdout.")
    p.add_argument("--prompt", required=True, metavar="TEXT",
                   help="the text to continue (UTF-8 bytes; at most the model's context, "
                        "256 bytes)")
    p.add_argument("--max-tokens", type=_count(1), required=True, metavar="N",
                   help="bytes to generate (each byte is one token)")
    add_backend_flag(p)
    p.add_argument("--model", metavar="FILE.octm",
                   help="model file: an fp32 model (quantized here) or a saved W8A8 model "
                        "(default: the shipped octet-demo-v1.octm)")
    p.add_argument("--sparsity", choices=tuple(SPARSITY), default="none",
                   help="prune the fp32 weights before quantizing: '50' = 50%% unstructured "
                        "(Wanda), '2:4' = 2 of every 4 (default none); the dense array "
                        "runs them at the same speed")
    p.add_argument("--temperature", type=_temperature, default=0.0, metavar="T",
                   help="0 = greedy (default), else sample at this temperature")
    p.add_argument("--top-k", type=_count(0), default=0, metavar="K",
                   help="sample only among the K most likely bytes (default 0 = all)")
    p.add_argument("--seed", type=_count(0), default=0, metavar="S",
                   help="random seed for sampling (default 0)")
    p.add_argument("--host-requant", action="store_true",
                   help="requantize the results the host reads anyway (attention output "
                        "projection, MLP up and down) on the host instead of through their "
                        "tables on the accelerator: the same bytes, fewer bytes on the bus "
                        "(the RTL reads an int8 STORE's parameter records twice)")
    add_accelerator_flags(p)
    p.add_argument("--timeout-cycles", type=_count(1), metavar="N",
                   help="stop with an error if one program runs longer than N cycles "
                        f"(default: golden waits; verilator {VERILATOR_TIMEOUT_CYCLES:,})")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object as the last line of stdout: text, tokens, "
                        "ttft_cycles, tpot_cycles, clock_mhz, tokens_per_s_at_clock, "
                        "utilization, wall_s, roofline_fraction, bytes_per_token and more")
    p.set_defaults(run=run)

    def one_line_error(message):
        p.exit(2, f"octet run: error: {message}\n")
    p.error = one_line_error


def summarize(result, config, clock_hz=None):
    """The cost report of a :class:`~octet.host.runtime.GenerationResult` as a dict."""
    from octet.host.runtime import CLOCK_HZ
    clock_hz = clock_hz or CLOCK_HZ
    steps = result.steps
    prefill = [s for s in steps if s.kind == "prefill"]
    decode = [s for s in steps if s.kind == "decode"]

    def total(group, key):
        return sum(s.counters[key] for s in group)

    ttft = total(prefill, "cycles")
    tpot = total(decode, "cycles") / len(decode) if decode else None
    roofline = result.weight_bytes / config.bus_bytes
    moved = (total(decode, "bytes_read") + total(decode, "bytes_written")) / len(decode) \
        if decode else None
    return {
        "prefill_tokens": sum(s.tokens for s in prefill), "decode_steps": len(decode),
        "ttft_cycles": ttft, "tpot_cycles": tpot, "clock_mhz": clock_hz / 1e6,
        "ttft_s_at_clock": ttft / clock_hz,
        "tpot_s_at_clock": None if tpot is None else tpot / clock_hz,
        "tokens_per_s_at_clock": None if tpot is None else clock_hz / tpot,
        "utilization": total(steps, "compute_cycles") / max(1, total(steps, "cycles")),
        "decode_utilization": total(decode, "compute_cycles") / max(1, total(decode,
                                                                              "cycles")),
        "roofline_cycles_per_token": roofline,
        "roofline_fraction": None if tpot is None else roofline / tpot,
        "weight_bytes": result.weight_bytes, "bytes_per_token": moved,
        "bytes_per_token_vs_weights": None if moved is None else moved / result.weight_bytes,
        "host_bytes_per_token": (sum(s.host_bytes for s in decode) / len(decode)
                                 if decode else None),
        "programs_per_token": (sum(s.programs for s in decode) / len(decode) if decode
                               else None),
        "ttft_wall_s": sum(s.wall_s for s in prefill),
        "tpot_wall_s": sum(s.wall_s for s in decode) / len(decode) if decode else None,
        "refills": sum(s.kind == "refill" for s in steps),
    }


def format_summary(report):
    """The human-readable lines of :func:`summarize`'s report."""
    mhz = report["clock_mhz"]
    lines = [f"prefill: {report['prefill_tokens']} tokens, time to first token "
             f"{report['ttft_cycles']:,} cycles = {report['ttft_s_at_clock'] * 1e3:.2f} ms at "
             f"{mhz:g} MHz ({report['ttft_wall_s']:.2f} s wall)"]
    if report["tpot_cycles"] is not None:
        lines += [
            f"decode: {report['decode_steps']} steps, time per output token "
            f"{report['tpot_cycles']:,.0f} cycles = {report['tpot_s_at_clock'] * 1e3:.3f} ms "
            f"= {report['tokens_per_s_at_clock']:,.0f} tokens/s at {mhz:g} MHz "
            f"({report['tpot_wall_s']:.2f} s wall per token)",
            f"roofline: {report['weight_bytes']:,} weight bytes per token / bus = "
            f"{report['roofline_cycles_per_token']:,.0f} cycles; decode runs at "
            f"{report['roofline_fraction']:.1%} of it",
            f"traffic: {report['bytes_per_token']:,.0f} device bytes per token "
            f"({report['bytes_per_token_vs_weights']:.2f}x the weights), "
            f"{report['host_bytes_per_token']:,.0f} host<->device bytes, "
            f"{report['programs_per_token']:.0f} programs per token"]
    lines.append(f"array utilization (COMPUTE_CYCLES / CYCLES): {report['utilization']:.1%} "
                 f"overall, {report['decode_utilization']:.1%} while decoding")
    return lines


def generate_text(device, qmodel, prompt, max_new, *, out=None, timeout_cycles=None,
                  temperature=0.0, top_k=0, seed=0, host_requant=False):
    """Run :func:`~octet.host.runtime.generate_on_device` on ``device``, writing the prompt and
    then each byte to ``out`` (a text stream) as it arrives; returns the GenerationResult."""
    from octet.host.runtime import generate_on_device
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    started = []

    def show(value):
        if out is not None:
            if not started:     # after the backend's progress messages, if any
                started.append(True)
                out.write(decoder.decode(prompt))
            out.write(decoder.decode(bytes([value[0]])))
            out.flush()

    result = device.call_streaming(generate_on_device, show, qmodel, prompt, max_new,
                                   temperature=temperature, top_k=top_k, seed=seed,
                                   timeout_cycles=timeout_cycles, host_requant=host_requant)
    if out is not None:
        out.write(decoder.decode(b"", final=True))
    return result


def run(args):
    from octet.host.devices import accelerator_config
    from octet.quant.prepare import prepare_model

    prompt = args.prompt.encode("utf-8")
    if not prompt:
        raise UsageError("--prompt must not be empty")
    config = accelerator_config(args.rows, args.cols, args.bus_bytes)

    def say(message):
        print(f"octet: {message}", file=sys.stderr, flush=True)

    prepared = prepare_model(args.model, args.sparsity, log=say)
    context = prepared.qmodel.config.context
    if len(prompt) > context:
        raise UsageError(f"the prompt has {len(prompt)} bytes but the model's context holds "
                         f"{context}")
    timeout = args.timeout_cycles or (VERILATOR_TIMEOUT_CYCLES if args.backend != "golden"
                                      else None)
    from octet.host.sampling import Sampler
    sampler = Sampler(args.temperature, args.top_k, args.seed)
    print(f"octet run: {prepared.description} on the {args.backend} backend "
          f"({config.rows}x{config.cols} array, {config.bus_bytes * 8}-bit bus), "
          f"{sampler.describe()}")
    start = time.monotonic()
    with open_backend(args, config) as device:
        result = generate_text(device, prepared.qmodel, prompt, args.max_tokens,
                               out=sys.stdout, timeout_cycles=timeout,
                               temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                               host_requant=args.host_requant)
    wall = time.monotonic() - start
    print()
    report = summarize(result, config)
    print("---")
    for line in format_summary(report):
        print(line)
    print(f"wall time {wall:.1f} s ({result.setup_wall_s:.1f} s placing the model)"
          + ("; cycles from the golden cycle model" if args.backend == "golden" else
             "; cycles from the RTL's counters"))
    if args.json:
        print_json({**report, "text": result.tokens.decode("utf-8", errors="replace"),
                    "tokens": list(result.tokens), "prompt": args.prompt,
                    "backend": args.backend, "model": str(prepared.path),
                    "sparsity": args.sparsity, "host_requant": args.host_requant,
                    "temperature": args.temperature,
                    "top_k": args.top_k, "seed": args.seed, "rows": config.rows,
                    "cols": config.cols, "bus_bytes": config.bus_bytes,
                    "cycle_source": "cycle model" if args.backend == "golden" else "rtl",
                    "wall_s": round(wall, 3), "setup_wall_s": round(result.setup_wall_s, 3)})
