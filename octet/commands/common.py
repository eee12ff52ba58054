"""Argument helpers shared by the subcommands: array size flags, file loading, JSON output."""

import argparse
import json
from pathlib import Path

import numpy as np

from octet.cli import UsageError
from octet.host.devices import BACKENDS, BUS_WIDTHS, MAX_ARRAY_DIM, open_device
from octet.numerics import RequantParams

__all__ = ["add_array_flags", "add_accelerator_flags", "add_backend_flag", "open_backend",
           "load_npy", "load_requant", "print_json", "positive_dim", "check_output_path",
           "save_npy"]


def positive_dim(text):
    """argparse type: an array dimension from 1 to 64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_ARRAY_DIM:
        raise argparse.ArgumentTypeError(
            f"array size must be between 1 and {MAX_ARRAY_DIM}, got {value}")
    return value


def add_array_flags(parser):
    parser.add_argument("--rows", type=positive_dim, default=8, metavar="R",
                        help="rows of the systolic array: the K depth of one weight tile "
                             "(1-64, default 8)")
    parser.add_argument("--cols", type=positive_dim, default=8, metavar="C",
                        help="columns of the systolic array: output channels per tile "
                             "(1-64, default 8)")


def add_accelerator_flags(parser):
    """--rows, --cols and --bus-bytes: the accelerator configuration to build or model."""
    add_array_flags(parser)
    parser.add_argument("--bus-bytes", type=int, choices=BUS_WIDTHS, default=8,
                        help="AXI data width of the accelerator's memory port in bytes "
                             "(default 8); scratchpads are scaled to the array size so they "
                             "keep the 8x8 design's capacity")


def add_backend_flag(parser):
    """--backend, and --port and --baud for the board backend."""
    parser.add_argument("--backend", choices=BACKENDS, default="golden",
                        help="where to run: 'golden' = the golden ISA simulator (NumPy) "
                             "with its cycle model (instant), 'verilator' = the RTL of the "
                             "accelerator in a Verilator simulation (compiled once, then "
                             "cached), 'board' = an FPGA with an 'octet bitstream' image over "
                             "its USB serial port; default golden")
    parser.add_argument("--port", metavar="DEV",
                        help="with --backend board: the board's serial port, e.g. "
                             "/dev/ttyUSB0 (default $OCTET_BOARD_PORT)")
    parser.add_argument("--baud", type=int, metavar="N",
                        help="with --backend board: the UART baud rate the bitstream was "
                             "built with (default $OCTET_BOARD_BAUD, else 1000000)")


def open_backend(args, config):
    """The device of ``--backend`` (a context manager), with ``--port`` / ``--baud``."""
    if args.backend != "board" and (args.port is not None or args.baud is not None):
        raise UsageError("--port and --baud are for --backend board")
    return open_device(args.backend, config, port=args.port, baud=args.baud)


def load_npy(path, what):
    """Load an .npy file without pickles; errors name the file and the problem."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{what} file {path} does not exist") from None
    except (OSError, ValueError, EOFError) as exc:       # EOFError: an empty file
        raise UsageError(f"cannot read {what} file {path} as .npy: {exc}") from None


def check_output_path(path):
    """Fail early (before a long simulation) if ``path`` cannot be written."""
    parent = Path(path).parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {parent} does not exist")


def save_npy(path, array):
    """Write ``array`` to ``path`` (.npy); errors name the file."""
    try:
        np.save(path, array)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc}") from None


def load_requant(path):
    """Read requantization parameters from an .npz (multiplier, shift[, bias, zero_point,
    relu])."""
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"requant file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read requant file {path} as .npz: {exc}") from None
    with archive:
        if not hasattr(archive, "files"):
            raise UsageError(f"requant file {path} is an .npy array, not an .npz archive")
        for key in ("multiplier", "shift"):
            if key not in archive.files:
                raise UsageError(f"requant file {path} has no '{key}' array "
                                 f"(it has: {', '.join(archive.files) or 'nothing'})")
        get = lambda key, default: archive[key] if key in archive.files else default  # noqa
        zero_point = np.asarray(get("zero_point", 0))
        relu = np.asarray(get("relu", False))
        if zero_point.size != 1 or relu.size != 1:
            raise UsageError(f"requant file {path}: zero_point and relu must be scalars")
        if not np.issubdtype(zero_point.dtype, np.integer):
            raise UsageError(f"requant file {path}: zero_point must be an integer")
        return RequantParams.create(archive["multiplier"], archive["shift"],
                                    get("bias", None), int(zero_point), bool(relu))


def print_json(obj):
    """Print one JSON object as the last line of stdout."""
    print(json.dumps(obj, sort_keys=True), flush=True)
