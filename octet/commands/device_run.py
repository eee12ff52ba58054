"""Running one operation on an accelerator device for a subcommand, and reporting its cost.

``octet gemm`` and ``octet conv2d`` share the flags (backend, array size, bus width, timeout,
``--json``), the device handling (:func:`octet.host.devices.open_device`, host code run with
``device.call``) and the report built from the accelerator's performance counters.
"""

import time

from octet.cli import UsageError
from octet.host.device import GoldenDevice
from octet.host.devices import accelerator_config

from .common import add_accelerator_flags, add_backend_flag, open_backend

__all__ = ["add_device_flags", "config_from_args", "run_on_device", "cost_report",
           "cost_summary", "TIMEOUT_FACTOR", "TIMEOUT_SLACK"]

#: Without --timeout-cycles, the Verilator backend gives up after this multiple of the golden
#: cycle model's estimate plus :data:`TIMEOUT_SLACK` cycles (the RTL should never hang).
TIMEOUT_FACTOR = 10
TIMEOUT_SLACK = 100_000


def add_device_flags(parser):
    """--backend, --rows, --cols, --bus-bytes, --timeout-cycles and --json."""
    add_backend_flag(parser)
    add_accelerator_flags(parser)
    parser.add_argument("--timeout-cycles", type=int, metavar="N",
                        help="stop with an error if the accelerator has not finished after N "
                             f"cycles (default: golden waits as long as it takes; verilator "
                             f"allows {TIMEOUT_FACTOR}x the golden cycle model's estimate + "
                             f"{TIMEOUT_SLACK})")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object as the last line of stdout: backend, "
                             "array size, cycles (RTL: the CYCLES counter; golden: its cycle "
                             "model), ideal_cycles, utilization = ideal_cycles / cycles, "
                             "dram_bytes = bytes read + written, bandwidth_utilization = "
                             "dram_bytes / (cycles * bus bytes), every counter, and more")


def config_from_args(args):
    """The :class:`~octet.config.AcceleratorConfig` the flags describe."""
    return accelerator_config(args.rows, args.cols, args.bus_bytes)


def _timeout(args, config, function, fargs):
    if args.timeout_cycles is not None:
        if args.timeout_cycles < 1:
            raise UsageError(f"--timeout-cycles must be at least 1, not {args.timeout_cycles}")
        return args.timeout_cycles
    if args.backend == "golden":
        return None
    _, estimate = function(GoldenDevice(config, timed=False), *fargs)
    return TIMEOUT_FACTOR * estimate.cycles + TIMEOUT_SLACK


def run_on_device(args, config, function, *fargs):
    """``function(device, *fargs, timeout_cycles=...)`` on the backend of ``args``.

    Returns ``(output, RunStats, wall_seconds)``; device errors and timeouts propagate as
    :class:`~octet.host.device.DeviceError` (one line each in the CLI).
    """
    timeout = _timeout(args, config, function, fargs)
    start = time.monotonic()
    with open_backend(args, config) as device:
        out, stats = device.call(function, *fargs, timeout_cycles=timeout)
    return out, stats, time.monotonic() - start


def cost_report(args, config, stats, wall):
    """The JSON keys every device subcommand reports (cost, counters, configuration)."""
    counters = dict(stats.counters)
    cycles = max(1, counters["cycles"])
    dram = counters["bytes_read"] + counters["bytes_written"]
    return {
        "backend": args.backend, "rows": config.rows, "cols": config.cols,
        "bus_bytes": config.bus_bytes, "cycles": counters["cycles"],
        "ideal_cycles": stats.ideal_cycles, "utilization": stats.ideal_cycles / cycles,
        "array_utilization": stats.ideal_cycles / max(1, counters["compute_cycles"]),
        "dram_bytes": dram, "bandwidth_utilization": dram / (cycles * config.bus_bytes),
        "counters": counters,
        "cycle_source": "cycle model" if args.backend == "golden" else "rtl",
        "wall_s": round(wall, 3), "output": str(args.output),
    }


def cost_summary(report):
    """The cost part of a subcommand's one-line summary."""
    return (f"{report['cycles']} cycles ({report['cycle_source']}), ideal "
            f"{report['ideal_cycles']:.0f}, utilization {report['utilization']:.1%}; "
            f"{report['dram_bytes']} DRAM bytes, bandwidth {report['bandwidth_utilization']:.1%}"
            f"; {report['wall_s']:.1f} s wall")

