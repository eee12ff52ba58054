"""Octet programs written as plain instruction lists, with the dependency tokens derived.

:class:`ProgramBuilder` takes LOAD, GEMM and STORE instructions in program order and works
out, from the fields alone, which scratchpad rows, accumulator rows and device-memory bytes
each one reads and writes. When an instruction touches what an instruction of another unit
touched before it (read after write, write after read, write after write) it must wait for
that instruction, and the builder sets the ``pop_*`` / ``push_*`` flags that make it wait:

* load <- compute, compute <- load, compute <- store, store <- compute: one token on the
  queue between the two units (``docs/isa.md``);
* load <- store (a LOAD of bytes a STORE of the same program wrote) and store <- load: there
  is no queue between these units, so the token is relayed through the compute unit: the
  first GEMM that has already waited for the producer, or else a one-tile *relay GEMM*
  inserted for the purpose (it writes a reserved accumulator row nobody reads) that waits for
  the producer unit's latest instruction, so that one relay serves the LOADs that follow.

Each consumer waits at most once per queue, for the latest producer it needs; a producer
pushes only when a consumer pops for it, and the producers a queue's consumers wait for come
in the same order as the consumers, so the k-th pop takes the k-th push and a program leaves
every queue empty. Every wait names an earlier instruction, so a program built this way cannot
deadlock. Waits already implied by earlier ones (units run in order) are left out.

:class:`SpadRing` hands out scratchpad or accumulator rows round-robin. Reuse of rows inside
one program is safe by the tracking above; rows that must survive into the next program (a
weight block prefetched for it) are *pinned* until that program's first reader is added.

Tested by ``tests/test_program_builder.py`` (every hazard kind, on the golden device).
"""

from octet import isa
from octet.isa import PARAM_RECORD_BYTES, Opcode, StoreMode, Target
from octet.sim.isa_sched import encode_fast

__all__ = ["ProgramBuilder", "SpadRing", "BuildError"]

_UNIT = {Opcode.LOAD: "load", Opcode.GEMM: "compute", Opcode.STORE: "store",
         Opcode.KV_LOAD: "load", Opcode.KV_APPEND: "store"}
#: (consumer, producer) -> (consumer's pop flag, producer's push flag) for the four queues.
_QUEUES = {("load", "compute"): ("pop_next", "push_prev"),
           ("compute", "load"): ("pop_prev", "push_next"),
           ("compute", "store"): ("pop_next", "push_prev"),
           ("store", "compute"): ("pop_prev", "push_next")}


class BuildError(ValueError):
    """An instruction the builder cannot place (bad fields, no room in a scratchpad)."""


def _ceil(a, b):
    return -(-a // b)


class SpadRing:
    """Round-robin allocator of rows ``[base, base + size)`` of one memory.

    Parameters
    ----------
    name : str
        For error messages ("weight scratchpad" ...).
    base, size : int
        The rows handed out.
    """

    def __init__(self, name, base, size):
        if size < 1:
            raise BuildError(f"{name}: the ring needs at least one row, not {size}")
        self.name = name
        self.base = base
        self.size = size
        self._next = base
        self._pins = {}

    def alloc(self, rows):
        """First row of ``rows`` consecutive rows after the last allocation (wrapping),
        avoiding pinned rows."""
        if not 1 <= rows <= self.size:
            raise BuildError(f"{self.name}: cannot hold {rows} rows (it has {self.size})")
        start, end = self._next, self.base + self.size
        for _ in range(2 * len(self._pins) + 2):
            if start + rows > end:
                start = self.base
            clash = [hi for lo, hi in self._pins.values() if lo < start + rows and start < hi]
            if not clash:
                self._next = start + rows
                return start
            start = max(clash)
        raise BuildError(f"{self.name}: no {rows} free rows between the pinned regions")

    def pin(self, key, addr, rows):
        """Keep ``[addr, addr + rows)`` out of later allocations until :meth:`unpin`."""
        self._pins[key] = (addr, addr + rows)

    def unpin(self, key):
        self._pins.pop(key, None)

    def clear(self):
        """Forget pins and start again at the base (nothing in the memory is live)."""
        self._pins.clear()
        self._next = self.base


class ProgramBuilder:
    """Collects instructions and derives their tokens (see the module docstring).

    Parameters
    ----------
    config : AcceleratorConfig
    relay_acc_row : int
        Accumulator row the relay GEMMs may overwrite (reserved: nothing else uses it).
    const_dram : tuple of (int, int), optional
        Device-memory byte range that no STORE writes (weights, parameter tables): reads of
        it are not tracked, which keeps the bookkeeping small.
    """

    def __init__(self, config, relay_acc_row, const_dram=(0, 0)):
        self.config = config
        self._relay_row = relay_acc_row
        self._const = const_dram
        self.instructions = []            # [Opcode, fields] in program order
        self._index = {u: [] for u in ("load", "compute", "store")}  # program positions
        self._records = []                # (space, lo, hi, writes, unit, unit index)
        self._waited = dict.fromkeys(_QUEUES, -1)
        self._horizon = []                # per GEMM: (load index, store index) waited so far
        self.relays = 0

    # --- adding instructions ---------------------------------------------------------------

    def load(self, *, target, spad_addr, rows, row_bytes, dram_addr, dram_stride=0,
             spad_stride=None):
        """LOAD ``rows`` rows of ``row_bytes`` bytes; ``spad_stride`` defaults to the rows
        one DRAM row fills. Returns the LOAD's index among the program's loads."""
        weight = getattr(target, "value", target) == Target.WEIGHT.value
        width = self.config.cols if weight else self.config.rows
        per = _ceil(row_bytes, width)
        fields = dict(target=target, spad_addr=spad_addr,
                      spad_stride=per if spad_stride is None else spad_stride, rows=rows,
                      row_bytes=row_bytes, dram_addr=dram_addr, dram_stride=dram_stride)
        return self._add(Opcode.LOAD, fields)

    def gemm(self, **fields):
        """GEMM with the given fields (unset ones are 0); returns its index among GEMMs."""
        return self._add(Opcode.GEMM, fields)

    def store(self, **fields):
        """STORE with the given fields; returns its index among the program's STOREs."""
        return self._add(Opcode.STORE, fields)

    def kv_load(self, **fields):
        """KV_LOAD with the given fields; returns its index among the program's loads."""
        return self._add(Opcode.KV_LOAD, fields)

    def kv_append(self, **fields):
        """KV_APPEND with the given fields; returns its index among the program's STOREs."""
        return self._add(Opcode.KV_APPEND, fields)

    def finish(self):
        """The program: ``(Opcode, fields)`` pairs, END last."""
        return [(op, dict(f)) for op, f in self.instructions] + [(Opcode.END, {})]

    def to_bytes(self):
        """The encoded program (END included)."""
        return b"".join(encode_fast(op, f).to_bytes(isa.INSTRUCTION_BYTES, "little")
                        for op, f in self.finish())

    # --- what an instruction touches -------------------------------------------------------

    def _accesses(self, op, f):
        cfg = self.config
        R, C = cfg.rows, cfg.cols
        if op is Opcode.LOAD:
            weight = getattr(f["target"], "value", f["target"]) == Target.WEIGHT.value
            per = _ceil(f["row_bytes"], C if weight else R)
            spad_hi = f["spad_addr"] + (f["rows"] - 1) * f["spad_stride"] + per
            dram_hi = f["dram_addr"] + (f["rows"] - 1) * f["dram_stride"] + f["row_bytes"]
            return [("w" if weight else "in", f["spad_addr"], spad_hi, True),
                    ("dram", f["dram_addr"], dram_hi, False)]
        if op is Opcode.GEMM:
            m, kt, nt = f.get("m", 0), f.get("k_tiles", 0), f.get("n_tiles", 0)
            if min(m, kt, nt) < 1:
                raise BuildError(f"GEMM m, k_tiles and n_tiles must be positive: {f}")
            a = f.get("a_addr", 0)
            w = f.get("w_addr", 0)
            acc = f.get("acc_addr", 0)
            return [("in", a, a + (kt - 1) * f.get("a_k_step", 0)
                     + (m - 1) * f.get("a_stride", 0) + 1, False),
                    ("w", w, w + (kt - 1) * f.get("w_k_step", 0)
                     + (nt - 1) * f.get("w_n_step", 0) + (R - 1) * f.get("w_stride", 0) + 1,
                     False),
                    ("acc", acc, acc + (nt - 1) * f.get("acc_n_step", 0) + m, True)]
        if op in (Opcode.KV_LOAD, Opcode.KV_APPEND):
            return self._kv_accesses(op, f)
        rows, cols = f["rows"], f["cols"]
        mode = f.get("mode", StoreMode.INT32)
        int8 = getattr(mode, "value", mode) == StoreMode.INT8.value
        nbytes = cols * (1 if int8 else 4)
        acc = f.get("acc_addr", 0)
        out = [("acc", acc, acc + (_ceil(cols, C) - 1) * f.get("acc_n_step", 0) + rows, False),
               ("dram", f["dram_addr"], f["dram_addr"] + (rows - 1) * f.get("dram_stride", 0)
                + nbytes, True)]
        if int8:
            out.append(("dram", f["param_addr"], f["param_addr"] + PARAM_RECORD_BYTES * cols,
                        False))
        return out

    def _kv_accesses(self, op, f):
        """KV rows are tracked per (sequence, pool) by position, not by address: the pages
        of one sequence never alias another's or another pool's."""
        heads, count = f.get("heads", 1), f["count"]
        rows = [(f"kv{f['seq']}.{f['pool'] + h}", f["pos"], f["pos"] + count,
                 op is Opcode.KV_APPEND) for h in range(heads)]
        if op is Opcode.KV_LOAD:
            weight = getattr(f["target"], "value", f["target"]) == Target.WEIGHT.value
            per = _ceil(f["row_bytes"], self.config.cols if weight else self.config.rows)
            lo = f["spad_addr"]
            hi = lo + (heads - 1) * f.get("spad_head_step", 0) \
                + (count - 1) * f["spad_stride"] + per
            return rows + [("w" if weight else "in", lo, hi, True)]
        acc = f.get("acc_addr", 0)
        hi = acc + (heads - 1) * f.get("acc_head_step", 0) \
            + (_ceil(f["cols"], self.config.cols) - 1) * f.get("acc_n_step", 0) + count
        params = f["param_addr"] + (heads - 1) * f.get("param_head_step", 0) \
            + PARAM_RECORD_BYTES * f["cols"]
        return rows + [("acc", acc, hi, False), ("dram", f["param_addr"], params, False)]

    def _tracked(self, space, lo, hi, writes):
        if space != "dram" or writes:
            return True
        return not (self._const[0] <= lo and hi <= self._const[1])

    # --- tokens ------------------------------------------------------------------------------

    def _add(self, op, fields, relay=False):
        unit = _UNIT[op]
        accesses = [] if relay else self._accesses(op, fields)
        need = {}
        for space, lo, hi, writes in accesses:
            for r_space, r_lo, r_hi, r_writes, r_unit, r_index in self._records:
                if r_unit != unit and r_space == space and r_lo < hi and lo < r_hi \
                        and (writes or r_writes):
                    need[r_unit] = max(need.get(r_unit, -1), r_index)
        # Relayed waits become a wait for a GEMM; find (or insert) it before this one.
        for producer in ("store", "load"):
            if producer in need and (unit, producer) not in _QUEUES:
                g = self._relay_gemm(producer, need.pop(producer))
                need["compute"] = max(need.get("compute", -1), g)
        entry = [op, dict(fields)]
        for producer, index in need.items():
            key = (unit, producer)
            if index <= self._waited[key]:
                continue
            pop, push = _QUEUES[key]
            entry[1][pop] = 1
            self.instructions[self._index[producer][index]][1][push] = 1
            self._waited[key] = index
        position = len(self.instructions)
        self.instructions.append(entry)
        unit_index = len(self._index[unit])
        self._index[unit].append(position)
        if op is Opcode.GEMM:
            self._horizon.append((self._waited[("compute", "load")],
                                  self._waited[("compute", "store")]))
        for space, lo, hi, writes in accesses:
            if self._tracked(space, lo, hi, writes):
                self._records.append((space, lo, hi, writes, unit, unit_index))
        return unit_index

    def _relay_gemm(self, producer, index):
        """Index of the first GEMM that has waited for ``producer`` instruction ``index``."""
        slot = 0 if producer == "load" else 1
        for g, horizon in enumerate(self._horizon):
            if horizon[slot] >= index:
                return g
        # Wait for the latest instruction of the producer, not just the one needed: the
        # next LOADs of the program usually need the neighbouring STOREs too (one relay).
        index = len(self._index[producer]) - 1
        self.relays += 1
        flag = "pop_prev" if producer == "load" else "pop_next"
        push = "push_next" if producer == "load" else "push_prev"
        key = ("compute", producer)
        fields = dict(m=1, k_tiles=1, n_tiles=1, acc_addr=self._relay_row)
        fields[flag] = 1
        self.instructions[self._index[producer][index]][1][push] = 1
        self._waited[key] = index
        return self._add(Opcode.GEMM, fields, relay=True)
