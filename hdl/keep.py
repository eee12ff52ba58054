"""Flip-flops that must stay separate copies on the FPGA.

Yosys merges flip-flops with the same inputs into one, which undoes a deliberate copy (one per
lane of a wide register, so that each lane's clock enable is a short net). A register named
with :func:`kept_name` carries :data:`KEEP_MARK` in its name; the FPGA flow
(:func:`octet.host.fpga_build.build_bitstream`) marks the flip-flops driving such wires
``keep`` right after reading the design (:data:`KEEP_SCRIPT`), which stops the merge. In
simulation the copies are plain registers with identical values.

Tested by ``tests/test_bitstream.py`` (the script selects the copies in the SoC's RTLIL).
"""

__all__ = ["KEEP_MARK", "KEEP_SCRIPT", "kept_name"]

#: Marks the name of a register copy that the FPGA flow keeps.
KEEP_MARK = "__copy"

#: Yosys commands (after reading the design): keep every flip-flop whose output wire carries
#: the mark.
KEEP_SCRIPT = f"setattr -set keep 1 w:*{KEEP_MARK}* %ci1:+$dff[Q] t:$dff %i"


def kept_name(base, index):
    """The name of copy ``index`` (from 1) of the register ``base``."""
    return f"{base}{KEEP_MARK}{index}"
