"""The accelerator programs of one transformer step (a chunk of tokens), built per step.

Between two host operations everything is one program, so a step of T tokens at positions
``t0 .. t0+T-1`` (``S = t0 + T`` keys) is four programs per block and one for the LM head:

1. **attention scores** (:meth:`ProgramPlanner.attention_scores`): LOAD the LayerNorm
   output; the QKV GEMM, whose STOREs write each head's queries to a buffer and whose
   KV_APPENDs write its k and v rows into the hardware KV cache's pages; then per head
   KV_LOADs of the keys ``[0, S)`` (the activation operand), one LOAD of the queries
   transposed (one byte per scratchpad row, so query ``r`` is weight n-tile ``r``), and per
   query a GEMM ``K_h q_r^T`` over the keys it may see, requantized by a STORE with the head's
   zero point. The KV_LOAD of the new keys waits for their KV_APPEND through a relay GEMM
   (:mod:`octet.host.program_builder`).
2. **attention output**: per head KV_LOAD the values ``[0, S)`` (weight operand) and the
   probabilities the host wrote, GEMM ``p_h V_h`` into that head's output channels and STORE
   them through the per-step ``p @ V`` table; LOAD the result back and run the output
   projection.
3. **MLP up**, 4. **MLP down**, and 5. **LM head** (int32 STORE): LOAD the host's input, GEMM.

Weight GEMMs stream their packed weights (:mod:`octet.host.model_layout`) in blocks of whole
n-tile columns through a ring in the weight scratchpad: one LOAD per block, GEMMs of
``gemm_tiles`` tiles each (all k-tiles, so nothing accumulates across instructions), and a
STORE for each output segment as soon as the GEMM that completes it is issued, so loads,
the array and stores overlap. The last instructions of every program **prefetch** the first
weight block of the next program into pinned scratchpad rows, so the load unit keeps
streaming across the host operation in between and across steps (the LM head prefetches
block 0 of the first QKV). Scratchpad and accumulator rows come from rings
(:class:`~octet.host.program_builder.SpadRing`): rows may be handed out again once their last
reader is in the program (the builder's tokens order the reuse), and rows that must survive
later allocations before their reader is added are pinned (prefetched blocks, keys loaded
ahead of their GEMMs).

Tested by ``tests/test_runtime.py`` (bit-exact against the integer reference).
"""

from dataclasses import dataclass

from octet.isa import PARAM_RECORD_BYTES, ParamSource, StoreMode, Target

from .model_layout import LayoutError
from .program_builder import BuildError, ProgramBuilder, SpadRing

__all__ = ["Program", "ProgramPlanner", "MAX_ROW_BYTES"]

#: LOAD ``row_bytes`` and STORE ``cols`` are 16-bit fields.
MAX_ROW_BYTES = (1 << 16) - 1


def _ceil(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class Program:
    """One program of a step: a tag ("blocks.0.attn.scores", ...) and its instructions."""

    tag: str
    instructions: list
    blob: bytes
    relays: int


@dataclass(frozen=True)
class _Output:
    """Channels ``[c0, c1)`` of a weight GEMM go to ``dram`` (rows ``stride`` apart), or,
    with ``kv`` = ``(seq, pool, pos)``, into the KV cache by KV_APPEND (whole rows)."""

    c0: int
    c1: int
    dram: int
    stride: int
    kv: tuple = None


class ProgramPlanner:
    """Builds the programs of :class:`~octet.host.model_layout.ModelLayout`'s model.

    Parameters
    ----------
    layout : ModelLayout
    block_tiles : int, optional
        Tiles per weight block (one LOAD); default a quarter of the weight scratchpad.
    gemm_tiles : int, optional
        Tiles per weight GEMM instruction (default: ``block_tiles``).
    host_requant : bool
        Store the output projection's and the MLP's results as int32 for the host to
        requantize, instead of through their tables (fewer bytes on the bus: the records of
        an int8 STORE outweigh its int32 output when one token is decoded).
    """

    def __init__(self, layout, block_tiles=None, gemm_tiles=None, host_requant=False):
        cfg, mc = layout.config, layout.model_config
        self.layout = layout
        self.config = cfg
        R, C = cfg.rows, cfg.cols
        self.block_tiles = block_tiles or max(1, cfg.weight_rows // (4 * R))
        self.gemm_tiles = gemm_tiles or self.block_tiles
        self.host_requant = bool(host_requant)
        self.in_ring = SpadRing("input scratchpad", 0, cfg.input_rows)
        self.w_ring = SpadRing("weight scratchpad", 0, cfg.weight_rows)
        self.acc_ring = SpadRing("accumulator", 0, cfg.acc_rows - 1)
        self._relay_row = cfg.acc_rows - 1
        self._resident = {}
        self._kept = set()          # (table, first record, records) in the parameter slots
        self._blocks = {}
        T, ctx, hd = layout.max_rows, mc.context, mc.head_dim
        needs = [("input scratchpad", cfg.input_rows, T * _ceil(max(mc.d_model, mc.d_ff), R),
                  "the GEMM inputs of one step"),
                 ("input scratchpad", cfg.input_rows, ctx * hd // R, "one head's keys"),
                 ("input scratchpad", cfg.input_rows, T * _ceil(ctx, R), "one head's "
                  "probabilities"),
                 ("weight scratchpad", cfg.weight_rows // 2, _ceil(ctx, R) * R * hd // C,
                  "one head's values"),
                 ("weight scratchpad", cfg.weight_rows // 2, T * hd, "one head's queries"),
                 ("accumulator", cfg.acc_rows - 1, ctx, "one query's scores")]
        for name, w in layout.weights.items():
            needs.append(("weight scratchpad", cfg.weight_rows // 2, w.k_tiles * R,
                          f"one n-tile column of {name}"))
            needs.append(("accumulator", cfg.acc_rows - 1, T * w.n_tiles,
                          f"the output of {name}"))
        for memory, have, need, what in needs:
            if need > have:
                raise LayoutError(f"{what} needs {need} rows of the {memory}, which has "
                                  f"{have} for it (reduce the tokens per step, "
                                  f"now {T}, or use a larger accelerator)")

    def reset(self):
        """Forget the scratchpad contents (before the first program, or after an error)."""
        for ring in (self.in_ring, self.w_ring, self.acc_ring):
            ring.clear()
        self._resident.clear()
        self._kept.clear()

    # --- building blocks ---------------------------------------------------------------------

    def _builder(self):
        return ProgramBuilder(self.config, self._relay_row, self.layout.const_range)

    def _finish(self, b, tag):
        return Program(tag, b.finish(), b.to_bytes(), b.relays)

    def _params(self, table, c0, cols):
        """The fields naming records ``[c0, c0 + cols)`` of ``table``: from device memory,
        or, for a table with parameter slots, kept on chip by their first use and read from
        the slots afterwards (they cross the bus once, not once per token)."""
        fields = {"param_addr": self.layout.tables[table] + PARAM_RECORD_BYTES * c0}
        slot = self.layout.slots.get(table)
        if slot is not None:
            key = (table, c0, cols)
            fields.update(param_src=ParamSource.SLOTS if key in self._kept else
                          ParamSource.KEEP, param_slot=slot + c0)
            self._kept.add(key)
        return fields

    def _load_keys(self, b, layer, head, pos, count, spad):
        """KV_LOAD keys ``[pos, pos + count)`` of (``layer``, ``head``) as a GEMM's A."""
        kv, hd = self.layout.kv, self.layout.model_config.head_dim
        b.kv_load(target=Target.INPUT, seq=kv.seq, pool=kv.pool("k", layer, head), heads=1,
                  pos=pos, count=count, row_bytes=hd, spad_addr=spad,
                  spad_stride=_ceil(hd, self.config.rows))

    def _load_act(self, b, dram, m, k, spad=None):
        """LOAD ``m`` rows of ``k`` int8 values (row-major at ``dram``) as a GEMM's A, to
        ``spad`` or newly allocated rows; returns the first row."""
        kt = _ceil(k, self.config.rows)
        spad = self.in_ring.alloc(m * kt) if spad is None else spad
        if k % self.config.rows == 0 and m * k <= MAX_ROW_BYTES:
            b.load(target=Target.INPUT, spad_addr=spad, rows=1, row_bytes=m * k,
                   dram_addr=dram)
        else:
            b.load(target=Target.INPUT, spad_addr=spad, rows=m, row_bytes=k, dram_addr=dram,
                   dram_stride=k, spad_stride=kt)
        return spad

    def _pinned(self, key, rows):
        """Input-scratchpad rows that later allocations must avoid until ``unpin(key)``."""
        spad = self.in_ring.alloc(rows)
        self.in_ring.pin(key, spad, rows)
        return spad

    def _plan(self, name):
        """``[(n0, n1, [(g0, g1), ...]), ...]``: the blocks of op ``name`` and their GEMMs."""
        if name not in self._blocks:
            w = self.layout.weights[name]
            group = max(1, self.gemm_tiles // w.k_tiles)
            per_block = max(group, self.block_tiles // w.k_tiles // group * group)
            per_block = min(per_block, max(1, self.config.weight_rows // 2
                                           // (w.k_tiles * self.config.rows)))
            group = min(group, per_block)
            blocks = []
            for n0 in range(0, w.n_tiles, per_block):
                n1 = min(n0 + per_block, w.n_tiles)
                blocks.append((n0, n1, [(g, min(g + group, n1)) for g in range(n0, n1,
                                                                                group)]))
            self._blocks[name] = blocks
        return self._blocks[name]

    def _load_block(self, b, name, n0, n1):
        w = self.layout.weights[name]
        R = self.config.rows
        spad = self.w_ring.alloc((n1 - n0) * w.k_tiles * R)
        addr, nbytes = w.block(n0, n1)
        if nbytes <= MAX_ROW_BYTES:
            b.load(target=Target.WEIGHT, spad_addr=spad, rows=1, row_bytes=nbytes,
                   dram_addr=addr)
        else:
            tiles = nbytes // w.tile_bytes
            b.load(target=Target.WEIGHT, spad_addr=spad, rows=tiles, row_bytes=w.tile_bytes,
                   dram_addr=addr, dram_stride=w.tile_bytes, spad_stride=R)
        return spad

    def _prefetch(self, b, name):
        """Load the first block of ``name`` for the next program and keep its rows."""
        if name is None or name in self._resident:
            return
        n0, n1, _ = self._plan(name)[0]
        spad = self._load_block(b, name, n0, n1)
        rows = (n1 - n0) * self.layout.weights[name].k_tiles * self.config.rows
        self.w_ring.pin(name, spad, rows)
        self._resident[name] = spad

    def _weight_op(self, b, name, a_spad, m, outputs, mode=StoreMode.INT8, table=None):
        """GEMMs of ``a`` (``m`` rows in the input scratchpad) by weight ``name`` and the
        STOREs of ``outputs`` (channel ranges of the result, see :class:`_Output`), int8
        through the records of ``table`` (a name of the layout's tables)."""
        w = self.layout.weights[name]
        R, C = self.config.rows, self.config.cols
        vb = 1 if mode is StoreMode.INT8 else 4
        acc = self.acc_ring.alloc(m * w.n_tiles)
        plan = self._plan(name)
        ends = sorted({g1 * C for _, _, groups in plan for _, g1 in groups})
        pending = []
        for out in outputs:
            if out.kv is not None:      # a K/V row is appended whole, after its last GEMM
                pending.append(out)
                continue
            c0 = out.c0
            for c1 in [c for c in ends if out.c0 < c < out.c1] + [out.c1]:
                pending.append(_Output(c0, c1, out.dram + (c0 - out.c0) * vb, out.stride))
                c0 = c1
        pending.sort(key=lambda o: o.c1)
        for block, (n0, n1, groups) in enumerate(plan):
            spad = self._resident.pop(name) if block == 0 and name in self._resident \
                else self._load_block(b, name, n0, n1)
            for g0, g1 in groups:
                b.gemm(m=m, k_tiles=w.k_tiles, n_tiles=g1 - g0, a_addr=a_spad,
                       a_stride=w.k_tiles, a_k_step=1,
                       w_addr=spad + (g0 - n0) * w.k_tiles * R, w_stride=1, w_k_step=R,
                       w_n_step=w.k_tiles * R, acc_addr=acc + g0 * m, acc_n_step=m)
                while pending and pending[0].c1 <= g1 * C:
                    o = pending.pop(0)
                    if o.kv is not None:
                        seq, pool, pos = o.kv
                        b.kv_append(seq=seq, pool=pool, heads=1, pos=pos, count=m,
                                    cols=o.c1 - o.c0, acc_addr=acc + o.c0 // C * m,
                                    acc_n_step=m, **self._params(table, o.c0, o.c1 - o.c0))
                        continue
                    fields = dict(mode=mode, acc_addr=acc + o.c0 // C * m, acc_n_step=m,
                                  rows=m, cols=o.c1 - o.c0, dram_addr=o.dram,
                                  dram_stride=o.stride)
                    if mode is StoreMode.INT8:
                        fields.update(self._params(table, o.c0, o.c1 - o.c0))
                    b.store(**fields)
            if block == 0:
                self.w_ring.unpin(name)

    # --- the five programs ---------------------------------------------------------------------

    def attention_scores(self, layer, T, t0, prefetch=None):
        """Program 1 of block ``layer``: QKV (q to the buffer, k and v into the cache) and the
        scores of every (head, query) over its visible keys."""
        lay, mc = self.layout, self.layout.model_config
        R = self.config.rows
        d, H, hd = mc.d_model, mc.n_head, mc.head_dim
        S = t0 + T
        pre = f"blocks.{layer}."
        b = self._builder()
        a = self._load_act(b, lay.buffers["act"], T, d)
        outs = [_Output(h * hd, (h + 1) * hd, lay.buffers["q"] + h * T * hd, hd)
                for h in range(H)]
        kv = lay.kv
        for j, which in ((1, "k"), (2, "v")):
            for h in range(H):
                outs.append(_Output(j * d + h * hd, j * d + (h + 1) * hd, 0, 0,
                                    kv=(kv.seq, kv.pool(which, layer, h), t0)))
        self._weight_op(b, pre + "attn.qkv", a, T, outs, table=pre + "attn.qkv")
        kt = hd // R
        zero_points = lay.qmodel[pre + "attn.scores.zero_point"]
        # The cached keys need not wait for the QKV STOREs: load them while the array works,
        # for as many heads as fit at once (the rows stay pinned until the head's GEMMs).
        k_spads = {}
        for h in range(H if t0 else 0):
            try:
                k_spads[h] = self._pinned(("keys", h), S * kt)
            except BuildError:
                break
            self._load_keys(b, layer, h, 0, t0, k_spads[h])
        for h in range(H):
            if h not in k_spads:
                k_spads[h] = self._pinned(("keys", h), S * kt)
                if t0:
                    self._load_keys(b, layer, h, 0, t0, k_spads[h])
            k_spad = k_spads[h]
            self._load_keys(b, layer, h, t0, T, k_spad + t0 * kt)
            q_spad = self.w_ring.alloc(T * hd)
            b.load(target=Target.WEIGHT, spad_addr=q_spad, rows=T * hd, row_bytes=1,
                   dram_addr=lay.buffers["q"] + h * T * hd, dram_stride=1, spad_stride=1)
            for r in range(T):
                keys = t0 + r + 1
                acc = self.acc_ring.alloc(keys)
                b.gemm(m=keys, k_tiles=kt, n_tiles=1, a_addr=k_spad, a_stride=kt,
                       a_k_step=1, w_addr=q_spad + r * hd, w_stride=1, w_k_step=R,
                       acc_addr=acc, acc_n_step=keys)
                b.store(mode=StoreMode.INT8, acc_addr=acc, acc_n_step=keys, rows=keys,
                        cols=1, dram_addr=lay.buffers["scores"] + (h * T + r) * S,
                        dram_stride=1, zero_point=int(zero_points[h]),
                        **self._params(pre + "attn.scores", h, 1))
            self.in_ring.unpin(("keys", h))
        self._prefetch(b, prefetch)
        return self._finish(b, pre + "attn.scores")

    def attention_output(self, layer, T, t0, prefetch=None):
        """Program 2 of block ``layer``: ``p @ V`` per head, STOREd through the step's
        table, then the output projection to the result buffer."""
        lay, mc = self.layout, self.layout.model_config
        R, C = self.config.rows, self.config.cols
        d, H, hd = mc.d_model, mc.n_head, mc.head_dim
        S = t0 + T
        pre = f"blocks.{layer}."
        b = self._builder()
        ks, nh = _ceil(S, R), hd // C
        pv_acc = self.acc_ring.alloc(T * d // C)
        kv = lay.kv
        for h in range(H):
            v_spad = self.w_ring.alloc(ks * R * nh)
            b.kv_load(target=Target.WEIGHT, seq=kv.seq, pool=kv.pool("v", layer, h), heads=1,
                      pos=0, count=S, row_bytes=hd, spad_addr=v_spad, spad_stride=nh)
            p_spad = self._load_act(b, lay.buffers["probs"] + h * T * S, T, S)
            b.gemm(m=T, k_tiles=ks, n_tiles=nh, a_addr=p_spad, a_stride=ks, a_k_step=1,
                   w_addr=v_spad, w_stride=nh, w_k_step=R * nh, w_n_step=1,
                   acc_addr=pv_acc + h * nh * T, acc_n_step=T)
            # One STORE per head, so that all but the last overlap the next head's GEMM.
            b.store(mode=StoreMode.INT8, acc_addr=pv_acc + h * nh * T, acc_n_step=T, rows=T,
                    cols=hd, dram_addr=lay.buffers["attn"] + h * hd, dram_stride=d,
                    **self._params(pre + "attn.pv", h * hd, hd))
        a = self._load_act(b, lay.buffers["attn"], T, d)
        self._result_op(b, pre + "attn.out", a, T)
        self._prefetch(b, prefetch)
        return self._finish(b, pre + "attn.out")

    def _result_op(self, b, name, a, T):
        """A weight op whose result the host reads (int8, or int32 with ``host_requant``)."""
        n = self.layout.weights[name].n
        if self.host_requant:
            self._weight_op(b, name, a, T, [_Output(0, n, self.layout.buffers["result"], 4 * n)],
                            mode=StoreMode.INT32)
        else:
            self._weight_op(b, name, a, T, [_Output(0, n, self.layout.buffers["result"], n)],
                            table=name)

    def linear(self, name, T, prefetch=None):
        """Programs 3-5: LOAD ``T`` input rows, the weight GEMM ``name``, STORE the result
        (int8 through its table; the LM head int32 to the logits buffer)."""
        lay = self.layout
        w = lay.weights[name]
        b = self._builder()
        a = self._load_act(b, lay.buffers["act"], T, w.k)
        if name == "head":
            self._weight_op(b, name, a, T, [_Output(0, w.n, lay.buffers["logits"], 4 * w.n)],
                            mode=StoreMode.INT32)
        else:
            self._result_op(b, name, a, T)
        self._prefetch(b, prefetch)
        return self._finish(b, name)
