"""Tests of the instruction encodings (``octet.isa``) and their documentation.

Every opcode's fields round-trip through :func:`encode` / :func:`decode` with random values
at random widths' extremes; :func:`encode` rejects unknown fields and values that do not fit;
``docs/isa.md`` contains the tables ``python -m octet.isa_doc`` generates, verbatim.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from octet import isa
from octet.isa import IsaError, Opcode
from octet.isa_doc import disassemble, format_instruction, layout_fields, markdown_tables
from octet.sim.isa_sched import decode_fast, encode_fast

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "isa.md"
FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")
ENUMS = {"Opcode": isa.Opcode, "Target": isa.Target, "StoreMode": isa.StoreMode}


def random_fields(opcode, rng):
    """Random legal values for every field of ``opcode`` (flags included)."""
    fields = {}
    for name, _, width, kind in layout_fields(isa.LAYOUTS[opcode]):
        if name in ("reserved", "header.opcode"):
            continue
        name = name.removeprefix("header.")
        if kind in ENUMS:
            fields[name] = ENUMS[kind](rng.choice([m.value for m in ENUMS[kind]]))
        elif kind == "signed":
            lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
            fields[name] = int(rng.choice([lo, hi, 0, int(rng.integers(lo, hi + 1))]))
        else:
            top = (1 << width) - 1
            fields[name] = int(rng.choice([0, top, int(rng.integers(0, top + 1))]))
    return fields


def plain(fields):
    return {k: (v.value if hasattr(v, "value") else v) for k, v in fields.items()}


@pytest.mark.parametrize("opcode", list(isa.LAYOUTS))
def test_round_trip(opcode, seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        fields = random_fields(opcode, rng)
        word = isa.encode(opcode, **fields)
        assert 0 <= word < 1 << isa.INSTRUCTION_BITS
        assert word & 0xF == opcode.value
        op, decoded = isa.decode(word)
        assert op is opcode
        assert decoded == plain(fields)
        # The simulator's and compiler's table-driven codec agrees with the reference one.
        assert encode_fast(opcode, fields) == word
        assert decode_fast(word) == (op, decoded)


@pytest.mark.parametrize("opcode", list(isa.LAYOUTS))
def test_layouts_fill_the_instruction(opcode):
    leaves = layout_fields(isa.LAYOUTS[opcode])
    assert sum(w for _, _, w, _ in leaves) == isa.INSTRUCTION_BITS
    offsets = [off for _, off, _, _ in leaves]
    assert offsets == sorted(offsets)
    assert leaves[-1][0] == "reserved"


def test_program_round_trip(seed):
    rng = np.random.default_rng(seed)
    program = [(op, random_fields(op, rng)) for op in
               [Opcode.LOAD, Opcode.IM2COL, Opcode.GEMM, Opcode.STORE]] + [(Opcode.END, {})]
    blob = isa.encode_program(program)
    assert len(blob) == 5 * isa.INSTRUCTION_BYTES
    decoded = isa.decode_program(blob + b"\xff" * 32)   # stops after END
    assert [op for op, _ in decoded] == [op for op, _ in program]
    for (_, f), (_, g) in zip(program, decoded, strict=True):
        assert g == {**dict.fromkeys(FLAGS, 0), **plain(f)}


def test_encoding_is_little_endian_bit_order():
    word = isa.encode(Opcode.GEMM, m=1, pop_prev=True)
    blob = word.to_bytes(32, "little")
    assert blob[0] == Opcode.GEMM.value | 1 << 4   # opcode in bits [3:0], pop_prev bit 4
    assert blob[1] == 1 << (9 - 8)                 # m starts at bit 9


@pytest.mark.parametrize("value", [0, 7, 8, 13, 14])
def test_decode_illegal(value):
    assert isa.decode(value) == (None, {"opcode": value})
    assert decode_fast(value | 1 << 200) == (None, {"opcode": value})


@pytest.mark.parametrize("opcode, fields, message", [
    (Opcode.LOAD, {"bogus": 1}, "unknown field(s): bogus"),
    (Opcode.LOAD, {"rows": 1 << 16}, "field rows = 65536 does not fit in unsigned(16)"),
    (Opcode.LOAD, {"rows": -1}, "field rows = -1 does not fit in unsigned(16)"),
    (Opcode.STORE, {"zero_point": 128}, "field zero_point = 128 does not fit in signed(8)"),
    (Opcode.STORE, {"zero_point": -129}, "field zero_point = -129 does not fit in signed(8)"),
    (Opcode.GEMM, {"k_tiles": 4096}, "field k_tiles = 4096 does not fit in unsigned(12)"),
    (Opcode.IM2COL, {"kernel_h": 16}, "field kernel_h = 16 does not fit in unsigned(4)"),
    (Opcode.END, {"reserved": 1}, "field 'reserved' cannot be set directly"),
    (Opcode.END, {"header": 1}, "field 'header' cannot be set directly"),
])
def test_encode_rejects(opcode, fields, message):
    for encoder in (lambda: isa.encode(opcode, **fields), lambda: encode_fast(opcode, fields)):
        with pytest.raises(IsaError) as info:
            encoder()
        assert message in str(info.value)
        assert str(info.value).startswith(opcode.name) or "directly" in message


def test_encode_rejects_illegal_opcode():
    with pytest.raises(IsaError, match="cannot encode opcode ILLEGAL"):
        isa.encode(Opcode.ILLEGAL)
    with pytest.raises(ValueError):
        isa.encode(7)


def test_doc_contains_generated_tables():
    doc = DOC.read_text()
    generated = markdown_tables()
    begin = "<!-- BEGIN GENERATED: python -m octet.isa_doc -->\n"
    end = "<!-- END GENERATED -->"
    assert begin in doc and end in doc
    body = doc.split(begin, 1)[1].split(end, 1)[0]
    assert body == generated, "docs/isa.md is stale: paste `python -m octet.isa_doc` output"


def test_isa_doc_command_prints_tables():
    out = subprocess.run([sys.executable, "-m", "octet.isa_doc"], capture_output=True,
                         text=True, check=True).stdout
    assert out == markdown_tables()
    for op in isa.LAYOUTS:
        assert f"#### {op.name} (opcode {op.value})" in out
    for reg in isa.Reg:
        assert f"| `{reg.name}` | 0x{reg.value:02X} |" in out


def test_doc_lists_every_error_code_and_register():
    doc = DOC.read_text()
    for code in isa.ErrorCode:
        if code is not isa.ErrorCode.NONE:
            assert f"| {code.name} ({code.value}) |" in doc
    for reg in ("ID", "VERSION", "CONFIG0", "CONFIG1", "CTRL", "STATUS", "FAULT_PC",
                "PROG_BASE", "MEM_LIMIT", "PC", "IRQ"):
        assert f"| {reg} |" in doc


def test_format_and_disassemble():
    program = [(Opcode.GEMM, dict(m=4, k_tiles=1, n_tiles=2, pop_prev=1, push_next=1)),
               (Opcode.END, {})]
    text = disassemble(isa.encode_program(program), base=0x100)
    lines = text.splitlines()
    assert lines[0].startswith("0x00000100: GEMM accumulate=0 m=4 ")
    assert lines[0].endswith("[pop_prev push_next]")
    assert lines[1] == "0x00000120: END"
    assert format_instruction(None, {"opcode": 9}) == "illegal opcode 9"
