"""The Yosys script of a board build: ``synth_ecp5`` with ABC9's wire delay chosen.

``synth_ecp5`` maps logic to LUTs with ``abc9 -W 300``: ABC chooses between fewer, wider LUT
levels and more, narrower ones assuming 300 ps of routing between two levels. On the ECP5's
slowest speed grade (the ULX3S's -6) nextpnr routes a net between neighbouring slices in about
1 ns, and more across the chip, so a mapping that saves a LUT at the cost of a level is a bad
trade there. With a wire delay closer to the routed one, ABC keeps paths shallower (wide LUTs
from the slices' PFU multiplexers, with no routing between their halves) for a few percent more
LUTs. Measured on the 1x1 and 8x8 systems (``docs/fpga.md``, "The ninth round"): with
1000 ps the 1x1 system routed slightly faster on average over four seeds, the 8x8 system did
not (two seeds), so the default stays 300 ps.

:func:`synth_script` rewrites the ``synth_ecp5`` line of Amaranth's generated script into
``synth_ecp5 -run :map_luts``, the ``map_luts`` step with the chosen ``-W``, and
``synth_ecp5 -run map_cells:``: the same passes ``synth_ecp5`` runs, in the same order.

:data:`AFTER_READ` is a step Amaranth's script runs right after reading the design (its
``script_after_read`` override): the device memory's read port may return anything for a word
written in the same cycle. Its RTL returns the old word then (Amaranth's read ports are not
transparent), which the block RAM cannot do across its two ports, so Yosys built that from
logic: each read compared with the pending write's address, into each block RAM's write
enables and a register at its output (about five flip-flops per block RAM; the fifteenth
timing round's worst paths, 10.2 to 12.4 ns). No correct program sees the difference: the
memory answers a write in the cycle its last beat goes into the block RAM, and a read issued
after that answer reads the new word. Only a read racing an unanswered write of the same word
could tell: two units using one region with no token between them, whose result hangs on
timing anyway.

Tested by ``tests/test_bitstream.py`` (the rewritten script, the argument checks, and the CI
build that runs it).
"""

import re

__all__ = ["ABC9_WIRE_PS", "AFTER_READ", "YOSYS_WIRE_PS", "check_wire_ps", "synth_script"]

#: Yosys commands run after reading the board design (``script_after_read``): the device
#: memory's (``soc.memory``, :class:`~octet.hdl.axi_bram.AxiBram`) read port leaves a same-cycle
#: collision with its write port undefined.
AFTER_READ = "setparam -set COLLISION_X_MASK 1 top.soc.memory/t:$memrd_v2"

#: The one ``synth_ecp5`` uses (Yosys 0.70): with it, the script is left as generated.
YOSYS_WIRE_PS = 300
#: ABC9's wire delay (ps) that ``octet bitstream`` uses unless told otherwise: synth_ecp5's
#: own, since 1000 ps, though it shortens the estimated paths, did not route the 8x8 system
#: faster (``docs/fpga.md``, "The ninth round").
ABC9_WIRE_PS = YOSYS_WIRE_PS
_MAX_WIRE_PS = 10000
_SYNTH = re.compile(r"^(?P<indent>\s*)synth_ecp5\s+(?P<opts>.*?)-top\s+(?P<top>\S+)\s*$",
                    re.MULTILINE)


def check_wire_ps(wire_ps):
    """Return ``wire_ps`` if it is a usable wire delay, else raise ValueError naming it."""
    if isinstance(wire_ps, bool) or not isinstance(wire_ps, int) or \
            not 1 <= wire_ps <= _MAX_WIRE_PS:
        raise ValueError(f"ABC9 wire delay must be an integer number of picoseconds from 1 "
                         f"to {_MAX_WIRE_PS}, not {wire_ps!r}")
    return wire_ps


def synth_script(text, synth_opts="", wire_ps=ABC9_WIRE_PS):
    """The Yosys script ``text`` with its ``synth_ecp5`` line given ``synth_opts`` and run
    with ABC9's wire delay ``wire_ps`` (picoseconds).

    Raises
    ------
    ValueError
        ``wire_ps`` out of range, or ``text`` has no single ``synth_ecp5 ... -top NAME`` line
        (when there is something to change).
    """
    check_wire_ps(wire_ps)
    if wire_ps == YOSYS_WIRE_PS and not synth_opts.strip():
        return text
    found = list(_SYNTH.finditer(text))
    if len(found) != 1:
        raise ValueError(f"expected one 'synth_ecp5 ... -top NAME' line in the Yosys script, "
                         f"found {len(found)}")
    match = found[0]
    indent, top = match["indent"], match["top"]
    opts = " ".join(part for part in (match["opts"].strip(), synth_opts.strip()) if part)
    head = f"synth_ecp5 {opts} -top {top}" if opts else f"synth_ecp5 -top {top}"
    if wire_ps == YOSYS_WIRE_PS:
        lines = [head]
    else:
        lines = [f"{head} -run :map_luts",
                 # synth_ecp5's map_luts step, with the wire delay changed.
                 "check -latchonly -assert",
                 "techmap -map +/lattice/latches_map.v",
                 f"abc9 -W {wire_ps}",
                 "clean",
                 f"{head} -run map_cells:"]
    return text[:match.start()] + "\n".join(indent + line for line in lines) + \
        text[match.end():]
