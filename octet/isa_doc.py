"""Human-readable views of the instruction set: field tables and a disassembler.

``python -m octet.isa_doc`` prints the Markdown tables of every instruction's fields, the
opcodes, the error codes and the register map, generated from :mod:`octet.isa`;
``docs/isa.md`` pastes that output between ``BEGIN GENERATED`` / ``END GENERATED`` markers
and ``tests/test_isa.py`` checks the two agree. :func:`format_instruction` and
:func:`disassemble` are used by the host to name a faulting instruction and by tests.
"""

from amaranth.hdl import Shape
from amaranth.lib import data
from amaranth.lib import enum as amaranth_enum

from octet import isa

__all__ = ["layout_fields", "field_table", "markdown_tables", "format_instruction",
           "disassemble", "main"]

FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")


def layout_fields(layout, prefix=""):
    """Leaves of a ``lib.data`` layout as ``(name, offset, width, kind)`` in bit order.

    ``kind`` is ``"unsigned"``, ``"signed"`` or the name of the enum a field holds.
    """
    out = []
    for key, field in data.Layout.cast(layout):
        name = f"{prefix}{key}"
        if isinstance(field.shape, data.Layout):
            out += [(sub, field.offset + off, width, kind)
                    for sub, off, width, kind in layout_fields(field.shape, f"{name}.")]
            continue
        if isinstance(field.shape, type) and issubclass(field.shape, amaranth_enum.Enum):
            kind = field.shape.__name__
        else:
            kind = "signed" if Shape.cast(field.shape).signed else "unsigned"
        out.append((name, field.offset, field.width, kind))
    return out


def _bits(offset, width):
    return f"[{offset}]" if width == 1 else f"[{offset + width - 1}:{offset}]"


def field_table(opcode):
    """Markdown table of one opcode's fields (bit range, width, kind)."""
    opcode = isa.Opcode(opcode)
    lines = [f"#### {opcode.name} (opcode {opcode.value})", "",
             "| field | bits | width | kind |", "|---|---|---|---|"]
    for name, offset, width, kind in layout_fields(isa.LAYOUTS[opcode]):
        lines.append(f"| `{name}` | {_bits(offset, width)} | {width} | {kind} |")
    return "\n".join(lines)


def _enum_table(title, enum_cls):
    lines = [f"#### {title}", "", "| name | value |", "|---|---|"]
    lines += [f"| `{m.name}` | {m.value} |" for m in enum_cls]
    return "\n".join(lines)


def markdown_tables():
    """Every generated table of ``docs/isa.md``, as one Markdown string."""
    parts = [_enum_table("Opcodes", isa.Opcode)]
    parts += [field_table(op) for op in isa.LAYOUTS]
    flag_lines = ["#### Header flags allowed per opcode", "", "| opcode | unit | flags |",
                  "|---|---|---|"]
    for op, flags in isa.ALLOWED_FLAGS.items():
        names = ", ".join(f"`{f}`" for f in FLAGS if f in flags) or "none"
        flag_lines.append(f"| {op.name} | {isa.QUEUE_OF[op].name} | {names} |")
    parts.append("\n".join(flag_lines))
    parts.append(_enum_table("Targets (LOAD)", isa.Target))
    parts.append(_enum_table("Store modes (STORE)", isa.StoreMode))
    parts.append(_enum_table("Parameter sources (STORE, KV_APPEND)", isa.ParamSource))
    parts.append(_enum_table("Error codes (STATUS[11:8])", isa.ErrorCode))
    reg_lines = ["#### Registers", "", "| register | offset |", "|---|---|"]
    reg_lines += [f"| `{r.name}` | 0x{r.value:02X} |" for r in isa.Reg]
    parts.append("\n".join(reg_lines))
    return "\n\n".join(parts) + "\n"


def format_instruction(opcode, fields):
    """One line naming an instruction and its fields: ``GEMM m=64 ... [pop_prev]``."""
    if opcode is None:
        return f"illegal opcode {fields.get('opcode', '?')}"
    flags = [f for f in FLAGS if fields.get(f)]
    body = " ".join(f"{k}={v}" for k, v in fields.items() if k not in FLAGS)
    text = f"{opcode.name} {body}".rstrip()
    return f"{text} [{' '.join(flags)}]" if flags else text


def disassemble(blob, base=0):
    """Listing of program bytes, one ``address: instruction`` line each, up to END."""
    lines = []
    for i, (op, fields) in enumerate(isa.decode_program(bytes(blob))):
        lines.append(f"0x{base + i * isa.INSTRUCTION_BYTES:08x}: {format_instruction(op, fields)}")
    return "\n".join(lines)


def main():
    """Print :func:`markdown_tables` (the generated part of ``docs/isa.md``)."""
    print(markdown_tables(), end="")


if __name__ == "__main__":
    main()
