"""Synthesis only (Yosys, no place and route) of the ULX3S board system, for timing estimates.

Writes ``OUT/top.json`` (the mapped netlist) in a few minutes, where a full
``octet bitstream`` build takes 10-30. Feed it to ``tools/fpga_sta.py``.

Usage: python tools/fpga_synth.py ROWS COLS OUT_DIR [CLOCK_MHZ [ABC9_WIRE_PS]]

ABC9_WIRE_PS is Yosys's LUT-mapping wire delay, as ``octet bitstream --abc9-wire``
(default: that command's).
"""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main(argv):
    if len(argv) not in (3, 4, 5):
        sys.exit(__doc__)
    rows, cols, out = int(argv[0]), int(argv[1]), Path(argv[2])
    mhz = float(argv[3]) if len(argv) > 3 else 100.0
    from octet.host.fpga_synth_script import ABC9_WIRE_PS, AFTER_READ, synth_script
    wire_ps = int(argv[4]) if len(argv) > 4 else ABC9_WIRE_PS
    from octet.hdl.boards import BOARDS, BoardTop, ecp5_pll
    from octet.hdl.soc import soc_config
    from octet.hdl.uart import uart_divisor
    from octet.host.board import DEFAULT_BAUD
    from octet.host.fpga_build import fpga_tools
    spec = BOARDS["ulx3s-85f"]
    clock_hz = round(ecp5_pll(spec.oscillator_hz, mhz * 1e6).f_out)
    top = BoardTop(spec, soc_config(rows, cols, mem_bytes=1 << 16), clock_hz,
                   uart_divisor(clock_hz, DEFAULT_BAUD))
    plan = spec.platform().prepare(top, "top", script_after_read=AFTER_READ)
    if out.exists():
        shutil.rmtree(out)
    plan.extract(out)
    ys = out / "top.ys"
    ys.write_text(synth_script(ys.read_text(), "", wire_ps))
    tools = fpga_tools()
    start = time.monotonic()
    print(f"yosys: synthesising {rows}x{cols} in {out} ...", flush=True)
    subprocess.run([tools["YOSYS"], "-q", "-l", "top.rpt", "top.ys"], cwd=out, check=True,
                   env={**os.environ, **tools})
    print(f"yosys: done in {time.monotonic() - start:.0f} s; netlist {out / 'top.json'}")


if __name__ == "__main__":
    main(sys.argv[1:])
