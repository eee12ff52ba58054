"""Octet's instruction set and register map: the one definition of every encoding.

The RTL decodes instructions through these ``lib.data`` layouts, the golden functional
simulator (:mod:`octet.sim.isa_sim`) and the host compiler encode and decode them with
:func:`encode` / :func:`decode`, and ``docs/isa.md`` documents them. An instruction is 256
bits, stored in device memory as 32 little-endian bytes; bit ``i`` of the instruction is bit
``i % 8`` of byte ``i // 8``.

Execution model (as VTA): the fetch unit reads instructions from ``PROG_BASE`` on and hands
each to one of three queues: LOAD and IM2COL to the load unit, GEMM to the compute unit,
STORE to the store unit. The units run concurrently; four counting-semaphore token queues
order them: load->compute, compute->load, compute->store, store->compute. Each instruction's
header flags say which tokens it waits for before starting (``pop_prev`` from the unit before
it in the chain load->compute->store, ``pop_next`` from the unit after it) and which it
produces when finished (``push_prev``, ``push_next``). END stops fetching; the program is done
when every unit has finished its queue.
"""

from amaranth.hdl import Shape, signed
from amaranth.lib import data, enum

from octet.bitfields import pack_fields, unpack_fields

__all__ = [
    "INSTRUCTION_BITS", "INSTRUCTION_BYTES", "Opcode", "Target", "StoreMode", "ParamSource",
    "ErrorCode",
    "HEADER", "LAYOUTS", "QUEUE_OF", "ALLOWED_FLAGS", "Unit", "encode", "decode", "encode_program",
    "decode_program", "Reg", "REG_BYTES", "ID_MAGIC", "VERSION", "PARAM_RECORD_BYTES",
    "Ctrl", "Status", "IsaError",
]

INSTRUCTION_BITS = 256
INSTRUCTION_BYTES = INSTRUCTION_BITS // 8
#: Bytes per channel of a requantization parameter table in device memory:
#: int32 multiplier at +0, int32 bias at +4, int8 shift at +8, zeros up to +16.
PARAM_RECORD_BYTES = 16


class IsaError(ValueError):
    """An instruction or program that cannot be encoded or decoded."""


class Opcode(enum.Enum, shape=4):
    ILLEGAL = 0   # zero-filled memory is not a program
    LOAD = 1      # strided 2-D copy, device memory -> input or weight scratchpad
    IM2COL = 2    # convolution patches, device memory (NHWC) -> input scratchpad
    GEMM = 3      # scratchpad tiles through the array into the accumulator
    STORE = 4     # accumulator -> device memory, int32 or requantized int8
    KV_LOAD = 5   # K or V rows of a sequence, through its block table -> scratchpad
    KV_APPEND = 6 # accumulator -> int8 K or V rows of a sequence, through its block table
    END = 15      # end of program


class Target(enum.Enum, shape=2):
    INPUT = 0
    WEIGHT = 1


class StoreMode(enum.Enum, shape=2):
    INT32 = 0     # raw accumulators, 4 bytes per value
    INT8 = 1      # through the requantizer, parameters read from device memory


class ParamSource(enum.Enum, shape=2):
    """Where an int8 STORE / KV_APPEND finds its requantization records."""
    MEMORY = 0    # device memory at param_addr
    KEEP = 1      # device memory at param_addr, and kept in parameter slots from param_slot
    SLOTS = 2     # parameter slots param_slot.. (kept by an earlier KEEP); param_addr unused


class ErrorCode(enum.Enum, shape=4):
    NONE = 0
    ILLEGAL_OPCODE = 1   # opcode 0 or unassigned
    MALFORMED = 2        # a field combination that cannot execute (zero sizes, bad flags)
    SPAD_RANGE = 3       # a scratchpad or accumulator row outside its memory
    DRAM_RANGE = 4       # a device-memory byte outside [0, MEM_LIMIT)
    BUS_ERROR = 5        # SLVERR / DECERR on the AXI master
    DEADLOCK = 6         # every unit waits for a token nobody will produce
    TOKEN_OVERFLOW = 7   # more than 255 tokens queued between two units
    KV_SEQUENCE = 8      # KV: sequence id >= KV_SEQ_COUNT, or its descriptor is free/invalid
    KV_RANGE = 9         # KV: a position beyond the pages allocated to the sequence
    KV_PAGE = 10         # KV: a block-table entry or pool index outside the KV area


class Unit(enum.Enum, shape=2):
    LOAD = 0
    COMPUTE = 1
    STORE = 2
    FETCH = 3


HEADER = data.StructLayout({
    "opcode": Opcode,
    "pop_prev": 1,
    "pop_next": 1,
    "push_prev": 1,
    "push_next": 1,
})


def _instruction(fields):
    used = HEADER.size + sum(data.Layout.cast(s).size if isinstance(s, data.Layout)
                             else _width(s) for s in fields.values())
    assert used <= INSTRUCTION_BITS, used
    return data.StructLayout({"header": HEADER, **fields,
                              "reserved": INSTRUCTION_BITS - used})


def _width(shape):
    return Shape.cast(shape).width


LAYOUTS = {
    Opcode.LOAD: _instruction({
        # Copies `rows` rows of `row_bytes` bytes; DRAM row i starts at
        # dram_addr + i * dram_stride and fills scratchpad rows
        # spad_addr + i * spad_stride + j for j < ceil(row_bytes / row width), where the row
        # width is R bytes (INPUT) or C bytes (WEIGHT); the last row is zero-padded.
        "target": Target,
        "spad_addr": 16,
        "spad_stride": 16,
        "rows": 16,
        "row_bytes": 16,
        "dram_addr": 32,
        "dram_stride": 32,
    }),
    Opcode.IM2COL: _instruction({
        # For output pixels q = 0..count-1 in raster order from (oy0, ox0) across rows of
        # out_w pixels, and for (ky, kx, cc) with cc < CC = ceil(channels / R): scratchpad
        # row spad_addr + q * KH*KW*CC + (ky*KW + kx) * CC + cc holds
        # X[oy*stride + ky - pad, ox*stride + kx - pad, cc*R : cc*R + R] (zeros outside the
        # image and beyond `channels`); X is NHWC int8 at x_addr with shape
        # (height, width, channels).
        "spad_addr": 16,
        "count": 16,
        "x_addr": 32,
        "height": 12,
        "width": 12,
        "channels": 12,
        "kernel_h": 4,
        "kernel_w": 4,
        "stride": 4,
        "pad": 4,
        "out_w": 12,
        "oy0": 12,
        "ox0": 12,
    }),
    Opcode.GEMM: _instruction({
        # For nt < n_tiles, kt < k_tiles, i < m:
        #   acc[acc_addr + nt*acc_n_step + i] (=, or += when accumulate or kt > 0)
        #     sum_r input[a_addr + kt*a_k_step + i*a_stride][r]
        #           * weight[w_addr + kt*w_k_step + nt*w_n_step + r*w_stride][:]
        "accumulate": 1,
        "m": 16,
        "acc_addr": 16,
        "a_addr": 16,
        "a_stride": 16,
        "w_addr": 16,
        "w_stride": 16,
        "k_tiles": 12,
        "a_k_step": 16,
        "w_k_step": 16,
        "n_tiles": 12,
        "w_n_step": 16,
        "acc_n_step": 16,
    }),
    Opcode.STORE: _instruction({
        # Writes `rows` rows of `cols` values: value (i, j) comes from
        # acc[acc_addr + (j // C) * acc_n_step + i][j % C] and goes to
        # dram_addr + i * dram_stride + j * (4 if INT32 else 1). INT8 mode requantizes with
        # channel j's record at param_addr + 16 * j and the instruction's zero_point / relu;
        # with param_src KEEP the records are also kept on chip in parameter slots
        # param_slot + j, with SLOTS they are read from those slots instead of memory.
        "mode": StoreMode,
        "acc_addr": 16,
        "acc_n_step": 16,
        "rows": 16,
        "cols": 16,
        "dram_addr": 32,
        "dram_stride": 32,
        "param_addr": 32,
        "zero_point": signed(8),
        "relu": 1,
        "param_src": ParamSource,
        "param_slot": 16,
    }),
    Opcode.KV_LOAD: _instruction({
        # For positions p = pos..pos+count-1 and heads h < heads: the first row_bytes bytes
        # of K/V row p of pool `pool + h` of sequence `seq` (address translated through the
        # sequence's block table, see octet.kv_format) fill scratchpad rows
        # spad_addr + h * spad_head_step + (p - pos) * spad_stride + j, j < ceil(row_bytes /
        # row width), as a LOAD of that row would.
        "target": Target,
        "seq": 16,
        "pool": 12,
        "heads": 8,
        "pos": 16,
        "count": 16,
        "row_bytes": 16,
        "spad_addr": 16,
        "spad_stride": 16,
        "spad_head_step": 16,
    }),
    Opcode.KV_APPEND: _instruction({
        # For positions p = pos..pos+count-1 and heads h < heads: row i = p - pos of the
        # accumulator columns of head h (acc_addr + h * acc_head_step as a STORE's acc_addr,
        # `cols` values), requantized to int8 with the records at
        # param_addr + h * param_head_step, becomes K/V row p of pool `pool + h` of `seq`
        # (param_src / param_slot as in STORE; head h's slots start at
        # param_slot + h * param_head_step / 16).
        "seq": 16,
        "pool": 12,
        "heads": 8,
        "pos": 16,
        "count": 16,
        "cols": 16,
        "acc_addr": 16,
        "acc_n_step": 16,
        "acc_head_step": 16,
        "param_addr": 32,
        "param_head_step": 16,
        "zero_point": signed(8),
        "param_src": ParamSource,
        "param_slot": 16,
    }),
    Opcode.END: _instruction({}),
}

#: The unit whose queue receives each opcode.
QUEUE_OF = {Opcode.LOAD: Unit.LOAD, Opcode.IM2COL: Unit.LOAD, Opcode.GEMM: Unit.COMPUTE,
            Opcode.STORE: Unit.STORE, Opcode.KV_LOAD: Unit.LOAD, Opcode.KV_APPEND: Unit.STORE,
            Opcode.END: Unit.FETCH}

#: Header flags each unit's instructions may use; others are MALFORMED.
ALLOWED_FLAGS = {
    Opcode.LOAD: {"pop_next", "push_next"},
    Opcode.IM2COL: {"pop_next", "push_next"},
    Opcode.GEMM: {"pop_prev", "pop_next", "push_prev", "push_next"},
    Opcode.STORE: {"pop_prev", "push_prev"},
    Opcode.KV_LOAD: {"pop_next", "push_next"},
    Opcode.KV_APPEND: {"pop_prev", "push_prev"},
    Opcode.END: set(),
}


def encode(opcode, **fields):
    """Encode one instruction as a 256-bit integer.

    ``fields`` are the layout's field names plus the header flags ``pop_prev``,
    ``pop_next``, ``push_prev``, ``push_next``. Raises :class:`IsaError` for unknown fields
    and values that do not fit.
    """
    opcode = Opcode(opcode)
    if opcode not in LAYOUTS:
        raise IsaError(f"cannot encode opcode {opcode.name}")
    values = {"header.opcode": opcode.value}
    for flag in ("pop_prev", "pop_next", "push_prev", "push_next"):
        values[f"header.{flag}"] = int(bool(fields.pop(flag, False)))
    for name, value in fields.items():
        if name in ("header", "reserved"):
            raise IsaError(f"field {name!r} cannot be set directly")
        values[name] = value.value if isinstance(value, enum.Enum) else int(value)
    try:
        return pack_fields(LAYOUTS[opcode], values, strict=True)
    except ValueError as exc:
        raise IsaError(f"{opcode.name}: {exc}") from None


def decode(word):
    """Decode a 256-bit integer into ``(Opcode or None, fields)``; None for an illegal one."""
    header = unpack_fields(HEADER, word & ((1 << HEADER.size) - 1))
    try:
        opcode = Opcode(header["opcode"])
    except ValueError:
        return None, {"opcode": header["opcode"]}
    if opcode not in LAYOUTS:
        return None, {"opcode": header["opcode"]}
    raw = unpack_fields(LAYOUTS[opcode], word)
    fields = {k.split(".", 1)[1]: v for k, v in raw.items() if k.startswith("header.")}
    for k, v in raw.items():
        if not k.startswith("header.") and k != "reserved":
            fields[k] = v
    fields.pop("opcode")
    return opcode, fields


def encode_program(instructions):
    """Bytes of a program from ``(opcode, fields)`` pairs."""
    return b"".join(encode(op, **dict(f)).to_bytes(INSTRUCTION_BYTES, "little")
                    for op, f in instructions)


def decode_program(blob):
    """``(opcode, fields)`` pairs from program bytes (stops after END)."""
    out = []
    for i in range(0, len(blob) - INSTRUCTION_BYTES + 1, INSTRUCTION_BYTES):
        op, f = decode(int.from_bytes(blob[i:i + INSTRUCTION_BYTES], "little"))
        out.append((op, f))
        if op is Opcode.END:
            break
    return out


# --- Register map (AXI4-Lite, 32-bit registers, byte addresses) ---------------------------

REG_BYTES = 0x80
ID_MAGIC = 0x4F435438   # "OCT8"
VERSION = 0x0001_0001   # 1.1: parameter slots (STORE / KV_APPEND param_src)


class Reg(enum.IntEnum):
    ID = 0x00              # RO  ID_MAGIC
    VERSION = 0x04         # RO  major << 16 | minor
    CONFIG0 = 0x08         # RO  rows | cols << 8 | bus_bytes << 16
    CONFIG1 = 0x0C         # RO  log2(input_rows) | log2(weight_rows) << 8 | log2(acc_rows) << 16
    CTRL = 0x10            # WO  Ctrl bits; reads 0
    STATUS = 0x14          # RO  Status bits, error code in [11:8]
    FAULT_PC = 0x18        # RO  address of the instruction that raised the error
    PROG_BASE = 0x1C       # RW  address of the first instruction (32-byte aligned)
    MEM_LIMIT = 0x20       # RW  DMA may touch [0, MEM_LIMIT); reset value = mem_bytes
    PC = 0x24              # RO  address of the next instruction to fetch
    IRQ = 0x28             # R/W1C  bit 0: done or error interrupt pending
    # KV cache (octet.kv_format): where sequence descriptors and pools live, and their shape.
    KV_SEQ_TABLE = 0x2C    # RW  address of the sequence descriptors (8-byte aligned)
    KV_SEQ_COUNT = 0x30    # RW  number of descriptors; a larger sequence id is KV_SEQUENCE
    KV_POOL_BASE = 0x34    # RW  address of page 0 of pool 0
    KV_GEOMETRY = 0x38     # RW  octet.kv_format.GEOMETRY: page, row pitch, pool sizes
    CONFIG2 = 0x3C         # RO  store_param_cache | param_slots << 16 (on-chip records)
    # 64-bit performance counters, low word first; cleared by START.
    CYCLES = 0x40          # cycles from START to done
    COMPUTE_CYCLES = 0x48  # cycles an activation row entered the array
    DMA_BUSY_CYCLES = 0x50 # cycles with a bus transaction outstanding
    DMA_STALL_CYCLES = 0x58  # busy cycles in which no data beat moved
    BYTES_READ = 0x60      # bytes read over the AXI master (instructions included)
    BYTES_WRITTEN = 0x68   # bytes written (strobed bytes only)
    INSTRUCTIONS = 0x70    # instructions fetched and dispatched (END included)


class Ctrl(enum.IntFlag):
    START = 1        # begin fetching at PROG_BASE; ignored while busy
    IRQ_ENABLE = 2   # drive the irq output when done or error (level, until IRQ cleared)


class Status(enum.IntFlag):
    BUSY = 1
    DONE = 2         # the last program finished (with or without error)
    ERROR = 4        # the last program stopped with the error code in [11:8]
