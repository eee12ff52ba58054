"""Random KV-cache workloads for differential tests of the RTL against the golden simulator.

A :class:`KvWorkload` keeps a :class:`~octet.host.kv_pages.PagedKVCache` (several layers and
heads, small pages so that appends cross page boundaries) whose table writes are recorded, so
the same host actions can be replayed on the golden device and the RTL. Each random program is
a few phases; a phase computes new K or V rows with a GEMM, appends them to a random sequence
with KV_APPEND (one or several heads), then streams a random range of a random sequence back
with KV_LOAD (into the input or the weight scratchpad), multiplies it in a GEMM and stores the
result, so every byte the controller moves is visible in memory or the accumulator. Between
programs sequences are freed and new ones take over their pages. :func:`error_program` builds
one program per KV error code.
"""


from octet.host.kv_pages import PagedKVCache
from octet.isa import Opcode, ParamSource, StoreMode, Target
from octet.kv_format import KvGeometry

from .random_programs import _params_table

__all__ = ["Recorder", "KvWorkload", "error_program", "ERROR_CASES"]

LAYERS, HEADS = 2, 2


class Recorder:
    """Stands in for a device while the host sets up tables: records memory/register writes."""

    def __init__(self):
        self.mem, self.regs = [], []

    def write_mem(self, addr, data):
        self.mem.append((addr, bytes(data)))

    def write_reg(self, reg, value):
        self.regs.append((reg, value))

    def take(self):
        """The writes recorded since the last call: ``(memory writes, register writes)``."""
        out = (self.mem, self.regs)
        self.mem, self.regs = [], []
        return out


class KvWorkload:
    """Random KV programs over one accelerator configuration.

    Device memory: data (random operands) at 0x1000, parameter records, an output region,
    the KV region, then programs.
    """

    def __init__(self, cfg, rng):
        self.cfg, self.rng = cfg, rng
        R, C = cfg.rows, cfg.cols
        self.d = 2 * C                                     # head_dim: two n-tiles per head
        self.data, self.data_bytes = 0x1000, 0x4000
        self.params = self.data + self.data_bytes
        self.out = self.params + 4096
        self.recorder = Recorder()
        page_tokens = int(rng.choice([2, 4]))
        geometry = KvGeometry(page_tokens=page_tokens, row_pitch=max(16, 2 * self.d),
                              pool_pages=32, pools=2 * LAYERS * HEADS)
        self.cache = PagedKVCache(self.recorder, self.out + 0x4000, geometry, max_seqs=4,
                                  max_pages=8)
        self.program = -(-self.cache.end // 64) * 64
        self.cache.configure()
        self.registers = self.recorder.take()[1]
        for _ in range(3):
            self.cache.new_sequence()
        self.R, self.C = R, C

    def pool(self, kind, layer, head=0):
        return (kind * LAYERS + layer) * HEADS + head

    def host_actions(self):
        """Free one sequence and start another now and then (the tables are written with
        each program, see :meth:`PagedKVCache.image`)."""
        rng, cache = self.rng, self.cache
        live = cache.sequences()
        if len(live) > 1 and rng.random() < 0.5:
            cache.free(int(rng.choice(live)))
        while len(cache.sequences()) < 3:
            cache.new_sequence()
        self.recorder.take()

    def random_program(self, phases=3):
        """``(instructions, memory writes)`` of one random valid program."""
        rng, cache = self.rng, self.cache
        R, C, d = self.R, self.C, self.d
        r = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
        params = _params_table(rng, 4096 // 16)
        prog = []
        kept = []
        for phase in range(phases):
            first, last = phase == 0, phase == phases - 1
            seq = int(rng.choice(cache.sequences()))
            length = cache.length(seq)
            limit = cache.max_pages * cache.geometry.page_tokens
            count = r(1, min(5, limit - length)) if length < limit else 0
            heads = r(1, HEADS)
            h0 = r(0, HEADS - heads)
            kind, layer = r(0, 1), r(0, LAYERS - 1)
            d_in = r(1, 2 * R)
            ntiles = heads * d // C
            acc = r(0, 32)
            prog += [
                (Opcode.LOAD, dict(target=Target.INPUT, spad_addr=0, spad_stride=2,
                                   rows=max(count, 1), row_bytes=d_in,
                                   dram_addr=self.data + r(0, 0x800), dram_stride=r(d_in, 64),
                                   pop_next=int(not first))),
                (Opcode.LOAD, dict(target=Target.WEIGHT, spad_addr=0, spad_stride=ntiles,
                                   rows=2 * R, row_bytes=heads * d,
                                   dram_addr=self.data + r(0, 0x800), dram_stride=heads * d,
                                   push_next=1)),
                (Opcode.GEMM, dict(m=max(count, 1), acc_addr=acc, a_addr=0, a_stride=2,
                                   a_k_step=1, w_addr=0, w_stride=ntiles, w_k_step=R * ntiles,
                                   k_tiles=2, n_tiles=ntiles, w_n_step=1, acc_n_step=count or 1,
                                   pop_prev=1, pop_next=int(not first), push_next=1))]
            if count:
                cache.reserve(seq, length + count)
                append = dict(
                    seq=seq, pool=self.pool(kind, layer, h0), heads=heads, pos=length,
                    count=count, cols=d, acc_addr=acc, acc_n_step=count,
                    acc_head_step=(d // C) * count, param_addr=self.params + 16 * r(0, 64),
                    param_head_step=16 * r(0, 8), zero_point=r(-128, 127), pop_prev=1,
                    push_prev=1)
                # Parameter slots: keep the heads' records, or reuse ones kept earlier in
                # this program (same head step, no more heads).
                step = append["param_head_step"] // 16
                need = (heads - 1) * step + d
                how = rng.random()
                reuse = [k for k in kept if heads <= k[2]]
                if how < 0.4 and reuse:
                    slot, step, _ = reuse[r(0, len(reuse) - 1)]
                    append.update(param_src=ParamSource.SLOTS, param_slot=slot,
                                  param_head_step=16 * step)
                elif how < 0.7 and need <= self.cfg.param_slots:
                    slot = r(0, self.cfg.param_slots - need)
                    append.update(param_src=ParamSource.KEEP, param_slot=slot)
                    kept.append((slot, step, heads))
                prog.append((Opcode.KV_APPEND, append))
            else:   # the sequence is full: keep the token chain with a plain STORE
                prog.append((Opcode.STORE, dict(mode=StoreMode.INT32, acc_addr=acc, rows=1,
                                                cols=1, dram_addr=self.out, pop_prev=1,
                                                push_prev=1)))
            prog.append((Opcode.GEMM, dict(m=1, acc_addr=200, a_addr=0, w_addr=0, k_tiles=1,
                                           n_tiles=1, pop_next=1, push_prev=1)))
            prog += self._stream_phase(r, last)
        self.recorder.take()
        return prog + [(Opcode.END, {})], self.cache.image() + [(self.params, params)]

    def _stream_phase(self, r, last):
        """KV_LOAD a random range of a random sequence, GEMM it, STORE the product."""
        cache, rng = self.cache, self.rng
        R, C, d = self.R, self.C, self.d
        seq = int(rng.choice(cache.sequences()))
        allocated = len(cache.pages(seq)) * cache.geometry.page_tokens
        if allocated == 0:
            cache.reserve(seq, 1)
            allocated = cache.geometry.page_tokens
        pos = r(0, allocated - 1)
        count = r(1, min(allocated - pos, 12))
        heads = r(1, HEADS)
        pool = self.pool(r(0, 1), r(0, LAYERS - 1), r(0, HEADS - heads))
        row_bytes = r(1, d)
        out = self.out + 256 * r(0, 8)
        base = 256
        if rng.random() < 0.5:       # K-style: rows are activations
            per = -(-row_bytes // R)
            step = count * per + r(0, 3)
            prog = [(Opcode.LOAD, dict(target=Target.WEIGHT, spad_addr=base, spad_stride=1,
                                       rows=per * R, row_bytes=C, dram_addr=self.data +
                                       r(0, 0x800), dram_stride=C, pop_next=1)),
                    (Opcode.KV_LOAD, dict(target=Target.INPUT, seq=seq, pool=pool,
                                          heads=heads, pos=pos, count=count,
                                          row_bytes=row_bytes, spad_addr=base,
                                          spad_stride=per, spad_head_step=step,
                                          push_next=1))]
            gemm = dict(m=count, acc_addr=64, a_addr=base + step * (heads - 1), a_stride=per,
                        a_k_step=1, w_addr=base, w_stride=1, w_k_step=R, k_tiles=per,
                        n_tiles=1)
            rows, cols = count, C
        else:                        # V-style: rows are weights
            per_w = -(-row_bytes // C)
            step = count * per_w + r(0, 3)
            kt = -(-count // R)
            prog = [(Opcode.LOAD, dict(target=Target.INPUT, spad_addr=base, spad_stride=kt,
                                       rows=3, row_bytes=count, dram_addr=self.data +
                                       r(0, 0x800), dram_stride=count, pop_next=1)),
                    (Opcode.KV_LOAD, dict(target=Target.WEIGHT, seq=seq, pool=pool,
                                          heads=heads, pos=pos, count=count,
                                          row_bytes=row_bytes, spad_addr=base,
                                          spad_stride=per_w, spad_head_step=step,
                                          push_next=1))]
            gemm = dict(m=3, acc_addr=64, a_addr=base, a_stride=kt, a_k_step=1,
                        w_addr=base + step * (heads - 1), w_stride=per_w, w_k_step=R * per_w,
                        k_tiles=kt, n_tiles=per_w, w_n_step=1, acc_n_step=3)
            rows, cols = 3, per_w * C
        prog.append((Opcode.GEMM, dict(gemm, pop_prev=1, push_next=1,
                                       push_prev=int(not last))))
        prog.append((Opcode.STORE, dict(mode=StoreMode.INT32, acc_addr=64,
                                        acc_n_step=gemm.get("acc_n_step", 0), rows=rows,
                                        cols=cols, dram_addr=out, dram_stride=4 * cols,
                                        pop_prev=1, push_prev=int(not last))))
        return prog


#: Error cases: name -> expected code name.
ERROR_CASES = {"unknown_sequence": "KV_SEQUENCE", "freed_sequence": "KV_SEQUENCE",
               "beyond_pages": "KV_RANGE", "corrupt_entry": "KV_PAGE",
               "pool_outside": "KV_PAGE", "zero_count": "MALFORMED"}


def error_program(work, case):
    """``(instructions, memory writes)``: appends to a good sequence, then one bad KV op.

    The good appends run before the bad instruction, so the memory comparison also shows that
    nothing after it (and nothing of other sequences) was written.
    """
    cache, d = work.cache, work.d
    for seq in cache.sequences():         # fresh sequences with a few positions each
        cache.free(seq)
    for n in (5, 2, 7):
        cache.reserve(cache.new_sequence(), n)
    seq = cache.sequences()[0]
    length = cache.length(seq)
    cache.reserve(seq, length + 1)
    good = dict(seq=seq, pool=0, heads=1, pos=length, count=1, cols=d, acc_addr=0,
                acc_n_step=1, param_addr=work.params)
    bad = dict(good)
    writes = []
    if case == "unknown_sequence":
        bad["seq"] = cache.max_seqs
    elif case == "freed_sequence":
        victim = cache.sequences()[-1]
        cache.free(victim)
        bad["seq"] = victim
    elif case == "beyond_pages":
        bad["pos"] = len(cache.pages(seq)) * cache.geometry.page_tokens
    elif case == "corrupt_entry":
        other = cache.sequences()[1]
        cache.reserve(other, 1)
        table = cache.tables + other * cache.max_pages * 4
        writes.append((table, (cache.geometry.pool_pages + 3).to_bytes(4, "little")))
        bad.update(seq=other, pos=0)
    elif case == "pool_outside":
        bad["pool"] = cache.geometry.pools
    elif case == "zero_count":
        bad["count"] = 0
    else:
        raise ValueError(f"unknown KV error case {case!r}")
    prog = [(Opcode.KV_APPEND, good), (Opcode.KV_APPEND, bad),
            (Opcode.KV_APPEND, dict(good, pool=1)), (Opcode.END, {})]
    work.recorder.take()
    return prog, cache.image() + writes + [(work.params, bytes(16 * 64))]
