"""``octet generate``: write the Verilog of the systolic array."""

import sys
from pathlib import Path

from .common import add_array_flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "generate", help="write the Verilog of the systolic array",
        description="Elaborate the R x C weight-stationary systolic array with Amaranth and "
                    "write it as one Verilog file (ports: w_stream, a_stream, o_stream with "
                    "__payload/__valid/__ready, plus clk and rst).")
    add_array_flags(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.v",
                   help="Verilog file to write")
    p.add_argument("--name", default="octet_systolic_array",
                   help="name of the top Verilog module (default octet_systolic_array)")
    p.set_defaults(run=run)


def run(args):
    from amaranth.back import verilog

    from octet.hdl.systolic_array import SystolicArray

    text = verilog.convert(SystolicArray(args.rows, args.cols), name=args.name)
    out = Path(args.output)
    out.write_text(text)
    print(f"wrote {out} ({args.rows}x{args.cols} array, module {args.name}, "
          f"{len(text.splitlines())} lines)", file=sys.stderr)
