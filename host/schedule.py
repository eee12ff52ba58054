"""Blocking and double-buffered, token-synchronised schedules of a tiled GEMM.

A GEMM of ``m`` activation rows, ``kt`` k-tiles and ``nt`` n-tiles is cut into blocks: an
activation block of ``mb`` rows, a weight block of ``kb`` k-tiles x ``nb`` n-tiles, and an
output block of ``mb`` rows x ``nb`` n-tiles in the accumulator. Each scratchpad and the
accumulator are split into two halves (slots) whenever a block fits in half, so the load unit
fills one slot while the compute unit reads the other, and the store unit drains one
accumulator slot while the compute unit fills the other (VTA's double buffering). One GEMM
instruction per (output block, k-block) runs the k and n tile loops of the whole block.

The dependency tokens are derived, not hand-placed: a load waits (``pop_next``) for the last
GEMM that read the slot it overwrites, a GEMM waits (``pop_prev``) for the loads of its step
and (``pop_next``) for the STORE that last drained its accumulator slot, and a STORE waits
(``pop_prev``) for the last GEMM of its block. Producers push exactly the tokens some consumer
pops, so the queues pair up in order and never deadlock. :func:`choose_blocking` tries a few
blockings and keeps the one the ISA cycle model (:func:`octet.sim.isa_sched.estimate_cycles`)
finds fastest. Tested through ``tests/test_compiler.py``.
"""

from dataclasses import dataclass, replace

from octet.isa import Opcode
from octet.sim.isa_sched import estimate_cycles

__all__ = ["ScheduleError", "Blocking", "Buffers", "plan_buffers", "candidate_blockings",
           "build_schedule", "compute_bound", "choose_blocking", "clamp_blocking", "ORDERS"]

#: Loop orders: ``"weights"`` keeps a weight block and streams activation blocks past it
#: (n-blocks outer); ``"inputs"`` keeps an activation block and streams weight blocks.
ORDERS = ("weights", "inputs")
_MAX_TILES = (1 << 12) - 1      # GEMM k_tiles / n_tiles fields
_MAX_FIELD16 = (1 << 16) - 1    # LOAD rows / row_bytes, GEMM m, STORE cols


class ScheduleError(ValueError):
    """A blocking that the scratchpads, the accumulator or the instruction fields cannot hold."""


def _ceil(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class Blocking:
    """How a GEMM is cut into blocks.

    Parameters
    ----------
    mb : int
        Activation rows per block (the GEMM instructions' ``m``).
    kb : int
        k-tiles per GEMM instruction and weight block.
    nb : int
        n-tiles per weight block, GEMM instruction and output block.
    a_full_k : bool
        Activation blocks hold every k-tile (required for IM2COL) instead of one k-block.
    order : str
        One of :data:`ORDERS`.
    """

    mb: int
    kb: int
    nb: int
    a_full_k: bool = False
    order: str = "weights"


@dataclass(frozen=True)
class Buffers:
    """Slots of each memory for a blocking: how many (1 or 2) and rows per slot."""

    a_slots: int
    a_rows: int
    w_slots: int
    w_rows: int
    acc_slots: int
    acc_rows: int


def _slots(name, need, depth):
    if need <= depth // 2:
        return 2, depth // 2
    if need <= depth:
        return 1, depth
    raise ScheduleError(f"{name} block needs {need} rows but the memory has {depth}")


def plan_buffers(config, m, kt, nt, blocking):
    """:class:`Buffers` for ``blocking``; raises :class:`ScheduleError` if it does not fit."""
    b = blocking
    for name in ("mb", "kb", "nb"):
        v = getattr(b, name)
        if not isinstance(v, int) or v < 1:
            raise ScheduleError(f"blocking {name} must be a positive integer, not {v!r}")
    if b.order not in ORDERS:
        raise ScheduleError(f"blocking order must be one of {ORDERS}, not {b.order!r}")
    mb, kb, nb = min(b.mb, m), min(b.kb, kt), min(b.nb, nt)
    ka = kt if b.a_full_k else kb
    R, C = config.rows, config.cols
    if mb > _MAX_FIELD16 or kb > _MAX_TILES or nb > _MAX_TILES or ka * R > _MAX_FIELD16 \
            or nb * C > _MAX_FIELD16 or kb * R > _MAX_FIELD16:
        raise ScheduleError(f"blocking mb={mb}, kb={kb}, nb={nb} (activation rows of {ka} "
                            "tiles) overflows an instruction field")
    a = _slots("an activation", mb * ka, config.input_rows)
    w = _slots("a weight", kb * R * nb, config.weight_rows)
    acc = _slots("an output", mb * nb, config.acc_rows)
    return Buffers(*a, *w, *acc)


def candidate_blockings(config, m, kt, nt, *, full_k=None):
    """A few sensible blockings, largest blocks first; ``full_k`` forces ``a_full_k``."""
    R, C = config.rows, config.cols
    w_half = max(config.weight_rows // 2, R)
    out = []
    kb_cap = max(1, min(kt, _MAX_TILES, _MAX_FIELD16 // R, w_half // R))
    for kdiv in (1, 2, 4):
        kb = _ceil(kt, _ceil(kt, max(1, kb_cap // kdiv)))
        nb_cap = max(1, min(nt, _MAX_TILES, _MAX_FIELD16 // C, w_half // (kb * R)))
        for ndiv in (1, 2):
            nb = _ceil(nt, _ceil(nt, max(1, nb_cap // ndiv)))
            for a_full_k in ((True, False) if full_k is None else (full_k,)):
                ka = kt if a_full_k else kb
                mb_cap = min(m, _MAX_FIELD16, config.input_rows // 2 // ka,
                             config.acc_rows // 2 // nb)
                if mb_cap < 1:
                    mb_cap = min(m, config.input_rows // ka, config.acc_rows // nb)
                if mb_cap < 1:
                    continue
                mb = _ceil(m, _ceil(m, mb_cap))
                for order in ORDERS:
                    blocking = Blocking(mb, kb, nb, a_full_k, order)
                    try:
                        plan_buffers(config, m, kt, nt, blocking)
                    except ScheduleError:
                        continue
                    if blocking not in out:
                        out.append(blocking)
    return out


class _Slots:
    """Which block each slot of one memory holds and which GEMM read it last."""

    def __init__(self, count, rows):
        self.rows = rows
        self.held = [None] * count
        self.last_use = [-1] * count

    def use(self, block, step):
        """Slot for ``block`` at GEMM ``step``: (base row, loaded?, GEMM to wait for)."""
        if block in self.held:
            slot, fresh, wait = self.held.index(block), False, -1
        else:
            slot = min(range(len(self.held)), key=self.last_use.__getitem__)
            fresh, wait = True, self.last_use[slot]
            self.held[slot] = block
        self.last_use[slot] = step
        return slot * self.rows, fresh, wait


@dataclass
class _Step:
    loads: list
    load_wait: int       # GEMM whose reads the loads must wait for (-1: none)
    gemm: dict
    store_wait: int      # STORE whose reads the GEMM must wait for (-1: none)
    store: tuple | None


def build_schedule(config, m, kt, nt, blocking, load_a, load_w, store):
    """The program (``(Opcode, fields)`` pairs, END last) of a blocked GEMM.

    ``load_a(m0, rows, kt0, ktiles, spad_addr)`` and ``load_w(kt0, ktiles, nt0, ntiles,
    spad_addr)`` return the LOAD / IM2COL instructions of one block (activation rows of
    ``ktiles`` consecutive input-scratchpad rows; weight rows ``(k * ntiles + n)``);
    ``store(m0, rows, nt0, ntiles, acc_addr)`` returns the STORE of one output block.
    """
    buf = plan_buffers(config, m, kt, nt, blocking)
    mb, kb, nb = min(blocking.mb, m), min(blocking.kb, kt), min(blocking.nb, nt)
    n_m, n_k, n_n = _ceil(m, mb), _ceil(kt, kb), _ceil(nt, nb)
    group = n_k if blocking.a_full_k else 1
    if blocking.order == "weights":
        outer = [(mi, ni) for ni in range(n_n) for mi in range(n_m)]
    else:
        outer = [(mi, ni) for mi in range(n_m) for ni in range(n_n)]
    a_slots, w_slots = _Slots(buf.a_slots, buf.a_rows), _Slots(buf.w_slots, buf.w_rows)
    last_store = [-1] * buf.acc_slots
    steps, stores = [], 0
    for block, (mi, ni) in enumerate(outer):
        acc = block % buf.acc_slots * buf.acc_rows
        m0, nt0 = mi * mb, ni * nb
        rows, ntiles = min(mb, m - m0), min(nb, nt - nt0)
        for kk in range(n_k):
            s = len(steps)
            kt0 = kk * kb
            akt0 = kk // group * group * kb
            atiles = min(group * kb, kt - akt0)
            a_base, a_fresh, a_wait = a_slots.use(("a", mi, kk // group), s)
            w_base, w_fresh, w_wait = w_slots.use(("w", kk, ni), s)
            loads = []
            if w_fresh:
                loads += load_w(kt0, min(kb, kt - kt0), nt0, ntiles, w_base)
            if a_fresh:
                loads += load_a(m0, rows, akt0, atiles, a_base)
            gemm = dict(accumulate=int(kk > 0), m=rows, acc_addr=acc, acc_n_step=rows,
                        a_addr=a_base + kt0 - akt0, a_stride=atiles, a_k_step=1,
                        w_addr=w_base, w_stride=ntiles, w_k_step=config.rows * ntiles,
                        w_n_step=1, k_tiles=min(kb, kt - kt0), n_tiles=ntiles)
            st = None
            store_wait = last_store[block % buf.acc_slots] if kk == 0 else -1
            if kk == n_k - 1:
                st = store(m0, rows, nt0, ntiles, acc)
                last_store[block % buf.acc_slots] = stores
                stores += 1
            steps.append(_Step(loads, max(a_wait, w_wait) if loads else -1, gemm,
                               store_wait, st))
    return _place_tokens(steps)


def _place_tokens(steps):
    gemm_pushes, store_pushes = set(), set()
    load_pops, gemm_pops = set(), set()
    waited_gemm = waited_store = -1
    for s, step in enumerate(steps):
        if step.load_wait > waited_gemm:
            load_pops.add(s)
            gemm_pushes.add(step.load_wait)
            waited_gemm = step.load_wait
        if step.store_wait > waited_store:
            gemm_pops.add(s)
            store_pushes.add(step.store_wait)
            waited_store = step.store_wait
    program, stores = [], 0
    for s, step in enumerate(steps):
        loads = [(op, dict(f)) for op, f in step.loads]
        if loads:
            loads[0][1]["pop_next"] = int(s in load_pops)
            loads[-1][1]["push_next"] = 1
        program += loads
        program.append((Opcode.GEMM, dict(step.gemm, pop_prev=int(bool(loads)),
                                          pop_next=int(s in gemm_pops),
                                          push_prev=int(s in gemm_pushes),
                                          push_next=int(step.store is not None))))
        if step.store is not None:
            op, fields = step.store
            program.append((op, dict(fields, pop_prev=1, push_prev=int(stores in store_pushes))))
            stores += 1
    program.append((Opcode.END, {}))
    return program


def compute_bound(config, m, kt, nt, blocking):
    """Cycles the compute unit alone needs for ``blocking`` (a lower bound on the total)."""
    R, C = config.rows, config.cols
    mb, kb, nb = min(blocking.mb, m), min(blocking.kb, kt), min(blocking.nb, nt)
    steps = _ceil(m, mb) * _ceil(kt, kb) * _ceil(nt, nb)
    rows = (m // mb) * max(mb, R) + (max(m % mb, R) if m % mb else 0)
    return steps * (2 * R + C + 1) + rows * kt * nt


def choose_blocking(config, m, kt, nt, make_program, *, full_k=None):
    """The fastest candidate blocking by the ISA cycle model: ``(blocking, program)``.

    ``make_program(blocking)`` builds the program of a blocking (:func:`build_schedule`
    with the operation's loaders). Candidates are simulated in the order of their
    :func:`compute_bound` and skipped once that bound cannot beat the best so far.
    Raises :class:`ScheduleError` if no blocking fits.
    """
    ranked = sorted((compute_bound(config, m, kt, nt, b), i, b) for i, b in
                    enumerate(candidate_blockings(config, m, kt, nt, full_k=full_k)))
    if not ranked:
        raise ScheduleError(f"no blocking of a {m}-row GEMM with {kt} k-tiles and {nt} "
                            "n-tiles fits the scratchpads and accumulator")
    best = None
    for bound, _, blocking in ranked:
        if best is not None and bound >= best[0]:
            break
        program = make_program(blocking)
        cycles = estimate_cycles(config, program)["cycles"]
        if best is None or cycles < best[0]:
            best = (cycles, blocking, program)
    return best[1], best[2]


def clamp_blocking(blocking, m, kt, nt):
    """``blocking`` with every block size clamped to the problem (for reporting)."""
    return replace(blocking, mb=min(blocking.mb, m), kb=min(blocking.kb, kt),
                   nb=min(blocking.nb, nt))
