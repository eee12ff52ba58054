"""Dispatch queues, dependency tokens and the cycle model of the Octet ISA.

:class:`Scheduler` is the execution model of ``docs/isa.md``: a fetch unit hands
instructions to the load, compute and store queues, and the three units run concurrently,
ordered only by the four counting-semaphore token queues. The functional simulator
(:mod:`octet.sim.isa_sim`) runs it with an ``execute`` callback that moves data; the host
compiler runs it with a no-op callback to estimate a schedule's cycles. Each token carries the
cycle its producer finished, so the cycle estimate honours every dependency whatever order
the round-robin executes the units in.

The cost of each instruction (:func:`instruction_cost`) is a deliberately simple model,
documented in ``docs/isa.md``: it is monotonic in every size and sane (DMA bound by the bus
width, GEMM bound by the array), not cycle-exact. Tested through ``tests/test_isa_sim.py``.
"""

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from octet import isa
from octet.isa import INSTRUCTION_BYTES, QUEUE_OF, ErrorCode, Opcode, ParamSource, StoreMode, Unit
from octet.isa_doc import layout_fields
from octet.numerics import REQUANT_STAGES

__all__ = ["DMA_LATENCY", "ROW_GAP", "TOKEN_LIMIT", "Fault", "Cost", "instruction_cost",
           "im2col_segments", "with_defaults", "decode_fast", "encode_fast",
           "Entry", "Scheduler", "estimate_cycles"]

#: Cycles from a DMA instruction's start to its first data beat (address and read latency).
DMA_LATENCY = 16
#: Cycles between two DRAM rows (bursts) of one DMA instruction.
ROW_GAP = 1
#: Largest number of tokens a queue may hold; one more is TOKEN_OVERFLOW.
TOKEN_LIMIT = 255

# Per unit (by name: enum hashing is slow in this hot loop): (flag, token queue) pairs.
_POPS = {"load": (("pop_next", "compute->load"),),
         "compute": (("pop_prev", "load->compute"), ("pop_next", "store->compute")),
         "store": (("pop_prev", "compute->store"),)}
_PUSHES = {"load": (("push_next", "load->compute"),),
           "compute": (("push_prev", "compute->load"), ("push_next", "compute->store")),
           "store": (("push_prev", "store->compute"),)}
_UNITS = ("load", "compute", "store")
_UNIT_OF = {op: unit.name.lower() for op, unit in QUEUE_OF.items() if unit is not Unit.FETCH}


class Fault(Exception):
    """An error that stops the program: ``code`` (ErrorCode), ``pc`` and a ``detail`` text."""

    def __init__(self, code, pc, detail):
        super().__init__(f"{ErrorCode(code).name} at 0x{pc:08x}: {detail}")
        self.code = ErrorCode(code)
        self.pc = pc
        self.detail = detail


@dataclass
class Cost:
    """Modelled cost of one instruction and the traffic it causes."""

    cycles: int
    bytes_read: int = 0
    bytes_written: int = 0
    beats: int = 0        # bus beats that carry data
    compute: int = 0      # contribution to COMPUTE_CYCLES
    dma: bool = False     # whether the instruction keeps the bus busy


def _beats(addrs, nbytes, bus):
    """Bus beats of bursts of ``nbytes`` starting at ``addrs`` (misalignment costs a beat)."""
    return np.where(nbytes > 0, (addrs % bus + nbytes + bus - 1) // bus, 0)


def _ceil(a, b):
    return -(-a // b)


def _row_beats(addr, stride, rows, nbytes, bus):
    """Total beats and the per-row beats array (None when every row costs the same)."""
    if rows == 1 or stride % bus == 0:
        per = _ceil(addr % bus + nbytes, bus) if nbytes else 0
        return per * rows, per
    beats = _beats(addr + np.arange(rows, dtype=np.int64) * stride, nbytes, bus)
    return int(beats.sum()), beats


def store_is_one_run(config, f):
    """Whether the RTL writes a STORE as one run of the write packer (one bus request): its
    bytes are contiguous (one row, or rows of at most C values back to back), fewer than
    2**16, and no parameter records are read between its rows."""
    int8 = f["mode"] == StoreMode.INT8.value
    nbytes = f["cols"] * (1 if int8 else 4)
    rereads = int8 and f.get("param_src", 0) == ParamSource.MEMORY.value and \
        f["cols"] > getattr(config, "store_param_cache", 0)
    contiguous = f["rows"] == 1 or (f["cols"] <= config.cols and f["dram_stride"] == nbytes)
    return contiguous and not rereads and f["rows"] * nbytes < 1 << 16


def instruction_cost(config, opcode, f):
    """:class:`Cost` of one decoded instruction; ``f`` holds the instruction's fields."""
    bus, R, C = config.bus_bytes, config.rows, config.cols
    if opcode is Opcode.LOAD:
        width = R if f["target"] == 0 else C
        rows, row_bytes = f["rows"], f["row_bytes"]
        total, beats = _row_beats(f["dram_addr"], f["dram_stride"], rows, row_bytes, bus)
        spad_rows = _ceil(row_bytes, width)
        if isinstance(beats, int):
            cycles = rows * (max(beats, spad_rows) + ROW_GAP)
        else:
            cycles = int(np.maximum(beats, spad_rows).sum()) + rows * ROW_GAP
        return Cost(DMA_LATENCY + cycles, bytes_read=rows * row_bytes, beats=total, dma=True)
    if opcode is Opcode.IM2COL:
        addrs, nbytes = im2col_segments(R, f)
        beats = _beats(addrs, nbytes, bus)
        read = int((beats + ROW_GAP * (nbytes > 0)).sum())
        spad_rows = f["count"] * f["kernel_h"] * f["kernel_w"] * _ceil(f["channels"], R)
        return Cost(DMA_LATENCY + max(read, spad_rows), bytes_read=int(nbytes.sum()),
                    beats=int(beats.sum()), dma=True)
    if opcode is Opcode.GEMM:
        tiles = f["k_tiles"] * f["n_tiles"]
        return Cost(R + tiles * max(f["m"], R) + R + C + 1, compute=f["m"] * tiles)
    if opcode is Opcode.STORE:
        int8 = f["mode"] == StoreMode.INT8.value
        nbytes = f["cols"] * (1 if int8 else 4)
        acc_reads = f["rows"] * _ceil(f["cols"], C)
        src = f.get("param_src", 0)
        if store_is_one_run(config, f):
            # Contiguous bytes and no parameter reads between rows: one write burst.
            total = _ceil(f["dram_addr"] % bus + f["rows"] * nbytes, bus)
            cycles = DMA_LATENCY + max(acc_reads, total + ROW_GAP)
        else:
            total, _ = _row_beats(f["dram_addr"], f["dram_stride"], f["rows"], nbytes, bus)
            cycles = DMA_LATENCY + max(acc_reads, total + ROW_GAP * f["rows"])
        bytes_read = param_beats = 0
        if int8 and src == ParamSource.SLOTS.value:
            cycles += REQUANT_STAGES      # records from the parameter slots, off the bus
        elif int8:
            # The RTL keeps a table of up to store_param_cache records on chip (or, KEEP, in
            # the parameter slots); a wider one it reads a second time, one n-tile at a time.
            once = f["cols"] <= getattr(config, "store_param_cache", 0) or \
                f.get("param_src", 0) == ParamSource.KEEP.value
            reads = 1 if once else 2
            bytes_read = 16 * f["cols"] * reads
            param_beats = _ceil(f["param_addr"] % bus + 16 * f["cols"], bus) * reads
            cycles += REQUANT_STAGES + param_beats
        return Cost(cycles, bytes_read=bytes_read, bytes_written=f["rows"] * nbytes,
                    beats=total + param_beats, dma=True)
    return Cost(0)


def im2col_segments(R, f):
    """Device-memory reads of an IM2COL: per (pixel, ky), the start address and byte count.

    The in-image pixels of one kernel row are contiguous in NHWC memory, so each (pixel, ky)
    is one burst of ``valid_kx * channels`` bytes (zero when the row lies in the padding).
    """
    q = np.arange(f["count"], dtype=np.int64)
    lin = f["oy0"] * max(f["out_w"], 1) + f["ox0"] + q
    oy, ox = lin // max(f["out_w"], 1), lin % max(f["out_w"], 1)
    iy = oy[:, None] * f["stride"] + np.arange(f["kernel_h"]) - f["pad"]       # (count, KH)
    ix0 = ox * f["stride"] - f["pad"]                                           # (count,)
    lo = np.maximum(0, -ix0)
    hi = np.minimum(f["kernel_w"], f["width"] - ix0)
    nkx = np.maximum(0, hi - lo)[:, None]
    row_ok = (iy >= 0) & (iy < f["height"])
    nbytes = np.where(row_ok, nkx * f["channels"], 0)
    addrs = f["x_addr"] + (iy * f["width"] + (ix0 + lo)[:, None]) * f["channels"]
    return np.where(nbytes > 0, addrs, 0), nbytes


@dataclass
class Entry:
    """One dispatched instruction waiting in a unit's queue."""

    pc: int
    opcode: Opcode
    fields: dict
    dispatched: int   # cycle the fetch unit handed it over


@dataclass
class Scheduler:
    """Round-robin execution of the fetch, load, compute and store units.

    Each round the fetch unit dispatches one instruction (until END), then the load, compute
    and store units each execute the head of their queue if its ``pop_*`` tokens are
    available. Tokens are pushed when an instruction finishes. A round in which nothing can
    happen, with instructions still queued, is a DEADLOCK. Execution is bounded: every round
    fetches or retires an instruction, and fetch stops at END or an error.

    Parameters
    ----------
    config : AcceleratorConfig
    fetch : callable
        ``fetch(pc) -> (Opcode, fields)``; raises :class:`Fault` (illegal opcode, bad flags,
        fetch outside memory).
    execute : callable
        ``execute(entry)`` checks and performs one instruction; raises :class:`Fault` before
        changing anything. It may return the instruction's :class:`Cost` (KV instructions,
        whose cost depends on memory contents); None means :func:`instruction_cost`.
    """

    config: object
    fetch: object
    execute: object
    cost: object = None   # cost(entry) -> Cost; default instruction_cost of its fields
    pc: int = 0
    counters: dict = field(default_factory=dict)

    def run(self, prog_base):
        """Run from ``prog_base`` to completion; raises :class:`Fault` on an error."""
        self.pc = prog_base
        self.counters = dict.fromkeys(("cycles", "compute_cycles", "dma_busy_cycles",
                                       "dma_stall_cycles", "bytes_read", "bytes_written",
                                       "instructions"), 0)
        self._queues = {u: deque() for u in _UNITS}
        self._tokens = {k: deque() for pops in _POPS.values() for _, k in pops}
        self._free = dict.fromkeys(_UNITS, 0)
        self._busy = []
        self._beats = 0
        self._fetch_time = DMA_LATENCY
        fetch_done = False
        try:
            while True:
                progressed = False
                if not fetch_done:
                    fetch_done = self._fetch_one()
                    progressed = True
                for unit in _UNITS:
                    progressed |= self._step(unit)
                if not progressed:
                    if not any(self._queues.values()):
                        break
                    self._deadlock()
        finally:
            self._finish_counters()

    def _fetch_one(self):
        opcode, fields = self.fetch(self.pc)
        per = _ceil(INSTRUCTION_BYTES, self.config.bus_bytes)
        self._fetch_time += per
        self._beats += per
        self.counters["bytes_read"] += INSTRUCTION_BYTES
        self.counters["instructions"] += 1
        pc, self.pc = self.pc, self.pc + INSTRUCTION_BYTES
        if opcode is Opcode.END:
            return True
        self._queues[_UNIT_OF[opcode]].append(Entry(pc, opcode, fields, self._fetch_time))
        return False

    def _step(self, unit):
        queue = self._queues[unit]
        if not queue:
            return False
        entry = queue[0]
        fields = entry.fields
        pops = [k for flag, k in _POPS[unit] if fields.get(flag)]
        tokens = self._tokens
        for k in pops:
            if not tokens[k]:
                return False
        for flag, k in _PUSHES[unit]:
            if fields.get(flag) and len(tokens[k]) >= TOKEN_LIMIT:
                raise Fault(ErrorCode.TOKEN_OVERFLOW, entry.pc,
                            f"{k} queue already holds {TOKEN_LIMIT} tokens")
        measured = self.execute(entry)
        queue.popleft()
        if self.cost is not None:
            cost = self.cost(entry)
        elif measured is not None:
            cost = measured
        else:
            cost = instruction_cost(self.config, entry.opcode, fields)
        start = max([self._free[unit], entry.dispatched] + [tokens[k].popleft() for k in pops])
        end = self._free[unit] = start + cost.cycles
        for flag, k in _PUSHES[unit]:
            if fields.get(flag):
                tokens[k].append(end)
        c = self.counters
        c["compute_cycles"] += cost.compute
        c["bytes_read"] += cost.bytes_read
        c["bytes_written"] += cost.bytes_written
        self._beats += cost.beats
        if cost.dma:
            self._busy.append((start, end))
        return True

    def _deadlock(self):
        heads = [(q[0].pc, u) for u, q in self._queues.items() if q]
        pc, _ = min(heads)
        waits = []
        for u, q in self._queues.items():
            if q:
                need = [k for flag, k in _POPS[u]
                        if q[0].fields.get(flag) and not self._tokens[k]]
                waits.append(f"{u} unit at 0x{q[0].pc:08x} waits for "
                             f"{', '.join(need)}")
        raise Fault(ErrorCode.DEADLOCK, pc, "; ".join(waits))

    def _finish_counters(self):
        c = self.counters
        c["cycles"] = max([self._fetch_time, *self._free.values()])
        intervals = sorted(self._busy + [(0, self._fetch_time)])
        busy, cur_start, cur_end = 0, None, None
        for s, e in intervals:
            if cur_end is None or s > cur_end:
                busy += 0 if cur_end is None else cur_end - cur_start
                cur_start, cur_end = s, e
            else:
                cur_end = max(cur_end, e)
        busy += 0 if cur_end is None else cur_end - cur_start
        c["dma_busy_cycles"] = busy
        c["dma_stall_cycles"] = max(0, busy - self._beats)


def with_defaults(instructions):
    """``(Opcode, fields)`` pairs with every field present (left-out fields are 0)."""
    return [(op, {**_defaults(op), **{k: getattr(v, "value", v) for k, v in fields.items()}})
            for op, fields in instructions]


def estimate_cycles(config, instructions, costs=None):
    """Counters (cycles included) of a program given as ``(Opcode, fields)`` pairs.

    Runs the :class:`Scheduler` without moving data or checking ranges (fields left out
    count as 0); the program must end with END. ``costs``, if given, are the instructions'
    :class:`Cost` s, precomputed. Raises :class:`Fault` on a deadlock, a token overflow or a
    missing END.
    """
    decoded = with_defaults(instructions)
    if costs is None:
        costs = [instruction_cost(config, op, f) for op, f in decoded]

    def fetch(pc):
        index = pc // INSTRUCTION_BYTES
        if index >= len(decoded):
            raise Fault(ErrorCode.DRAM_RANGE, pc, "program has no END")
        return decoded[index]

    scheduler = Scheduler(config, fetch, lambda entry: None,
                          cost=lambda entry: costs[entry.pc // INSTRUCTION_BYTES])
    scheduler.run(0)
    return scheduler.counters


def _defaults(opcode):
    return dict.fromkeys(_LEAVES[opcode][1], 0)


def _leaves(layout):
    out = []
    for name, offset, width, kind in layout_fields(layout):
        if name in ("header.opcode", "reserved"):
            continue
        signed = kind == "signed"
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        out.append((name.removeprefix("header."), offset, width, signed, lo, hi))
    return out, [leaf[0] for leaf in out], frozenset(leaf[0] for leaf in out)


#: Per opcode: (leaves as (name, offset, width, signed, lo, hi), field names, their set).
_LEAVES = {op: _leaves(layout) for op, layout in isa.LAYOUTS.items()}


def decode_fast(word):
    """:func:`octet.isa.decode`, from a table precomputed from the same layouts."""
    try:
        opcode = Opcode(word & 0xF)
    except ValueError:
        return None, {"opcode": word & 0xF}
    if opcode not in _LEAVES:
        return None, {"opcode": word & 0xF}
    fields = {}
    for name, offset, width, signed, _, _ in _LEAVES[opcode][0]:
        v = (word >> offset) & ((1 << width) - 1)
        if signed and v >> (width - 1):
            v -= 1 << width
        fields[name] = v
    return opcode, fields


def encode_fast(opcode, fields):
    """:func:`octet.isa.encode` of ``(opcode, fields)`` (which it defers to on any doubt)."""
    leaves, _, names = _LEAVES.get(opcode, (None, (), frozenset()))
    if leaves is None or not fields.keys() <= names:
        return isa.encode(opcode, **fields)
    word = opcode.value
    for name, offset, width, _, lo, hi in leaves:
        v = fields.get(name, 0)
        v = int(getattr(v, "value", v))
        if not lo <= v <= hi:
            return isa.encode(opcode, **fields)
        word |= (v & ((1 << width) - 1)) << offset
    return word
