"""Flip-flops that must stay separate copies on the FPGA.

Yosys merges flip-flops whose inputs are the same signals into one, which undoes a
deliberate copy (so that each copy's fan-out is a short net). A register named with
:func:`kept_name` carries :data:`KEEP_MARK` in its name; the FPGA flow
(:func:`octet.host.fpga_build.build_bitstream`) marks the flip-flops driving such wires
``keep`` right after reading the design (:data:`KEEP_SCRIPT`), which stops the merge. (Copies
whose next state depends on their own value, such as a lane-split skid buffer's valid flags,
are not merged by Yosys in any case; they carry the mark too, so that every intended copy is
named the same way.) In simulation the copies are plain registers with identical values.

Tested by ``tests/test_bitstream.py``: a copy of an AND of two inputs is merged by
``synth_ecp5`` without the script and kept with it; a skid buffer's copies are kept.
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
