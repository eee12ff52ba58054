"""Port signatures shared by the accelerator's units (fetch, load, compute, store).

Every unit takes instructions as ``{word, pc}`` beats, reports at most one error as
``{code, pc}`` and writes or reads on-chip memories through these small port bundles, so the
top level (:mod:`octet.hdl.accelerator`) wires them without per-unit special cases.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.isa import INSTRUCTION_BITS, ErrorCode

__all__ = ["instruction_layout", "InstructionStream", "ErrorReport", "MemWrite", "MemRead",
           "BusRequest"]


def instruction_layout():
    return data.StructLayout({"word": INSTRUCTION_BITS, "pc": 32})


def InstructionStream():
    return stream.Signature(instruction_layout())


class ErrorReport(wiring.Signature):
    """Error output of a unit: ``valid`` holds until the program is restarted."""

    def __init__(self):
        super().__init__({"valid": Out(1), "code": Out(ErrorCode), "pc": Out(32)})


class MemWrite(wiring.Signature):
    """Write port of a scratchpad: ``en`` writes ``data`` at ``addr`` this cycle."""

    def __init__(self, width, depth):
        super().__init__({"addr": Out(range(depth)), "data": Out(unsigned(width)),
                          "en": Out(1)})


class MemRead(wiring.Signature):
    """Read port of a scratchpad: ``data`` shows the row at last cycle's ``addr``."""

    def __init__(self, width, depth):
        super().__init__({"addr": Out(range(depth)), "data": In(unsigned(width)),
                          "en": Out(1)})


def BusRequest():
    """A read or write of ``beats`` bus beats from a bus-aligned byte address."""
    return stream.Signature(data.StructLayout({"addr": 32, "beats": 16}))
