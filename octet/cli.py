"""The ``octet`` command line.

Each subcommand lives in :mod:`octet.commands` as a module with ``add_parser(subparsers)``
and ``run(args)``. Errors the user can fix (bad files, shapes, flags, parameters) are raised
as :class:`UsageError` or one of the library's ValueError/RuntimeError subclasses (accelerator
errors and timeouts included: :class:`octet.host.device.DeviceError`) and printed as one line,
``octet: error: ...``, with exit status 2; tracebacks are for bugs only.
"""

import argparse
import sys

from octet import __version__

__all__ = ["main", "UsageError"]


class UsageError(Exception):
    """A problem with the user's input; printed as one line without a traceback."""


def _subcommands():
    from octet.commands import bench, bitstream, conv2d, demo, evaluate, gemm, generate, run
    return [generate, gemm, conv2d, run, demo, evaluate, bench, bitstream]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="octet",
        description="Octet: generate, simulate and benchmark an int8 systolic-array "
                    "accelerator. Run 'octet COMMAND --help' for each command's flags.")
    parser.add_argument("--version", action="version", version=f"octet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _subcommands():
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(None if argv is None else [str(a) for a in argv])
    if unknown:
        print(f"octet: error: unrecognized arguments: {' '.join(unknown)}", file=sys.stderr)
        return 2
    from octet.host.backend import BackendError
    from octet.host.device import DeviceError
    from octet.host.tiling import OperandError
    from octet.numerics import NumericsError
    from octet.toolchain import ToolchainError
    try:
        return args.run(args) or 0
    except (UsageError, OperandError, NumericsError, BackendError, DeviceError, ToolchainError,
            ValueError, OSError) as exc:
        print(f"octet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("octet: interrupted", file=sys.stderr)
        return 130
