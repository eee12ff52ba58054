"""The accelerator's error handling and completion: halt, first error, deadlock, finish.

While a program runs this block watches the six units (fetch, the two KV controllers, load,
compute, store), the token queues and the bus, and decides

* when each unit halts: a flip-flop per unit, set by any other unit's error, a token overflow
  or a deadlock (a failing unit halts itself);
* which error is reported: the first one, with its code and the faulting instruction's pc;
* when the program is stuck: every unit that could move waits for a token nobody can produce,
  reported as DEADLOCK with the pc of the oldest waiting instruction;
* when the program has finished: everything idle after END, or, after an error, the bus
  transfers already started complete.

Every input from the units is registered before it is combined, so their logic ends in a
flip-flop here. The block runs in the accelerator's own domain (``sync``), not the units' one.

Tested through the accelerator by ``tests/test_accelerator_rtl.py`` (cocotb + Verilator:
random programs with errors, overflows and deadlocks against ``octet.sim.isa_sim``).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from octet.isa import ErrorCode

from .or_tree import or_tree
from .unit_ports import ErrorReport

__all__ = ["UnitWatch", "ErrorControl", "DEADLOCK_CYCLES"]

# Cycles nothing may move while someone waits for a token before DEADLOCK is raised.
DEADLOCK_CYCLES = 8

# Error priority, highest first (the unit earlier in the instruction stream wins a tie).
_UNITS = ("fetch", "kv_load", "load", "compute", "kv_store", "store")
# Units that can wait for a token; this order also breaks ties in the oldest-waiting pc.
_WAITERS = ("load", "compute", "store", "kv_load", "kv_store")


class UnitWatch(wiring.Signature):
    """One unit as the error control sees it, from the unit's side.

    Members are ``error`` (the unit's :class:`~octet.hdl.unit_ports.ErrorReport`), ``halt``
    (in: stop), ``busy`` and ``pc`` (out), and the one-bit status flags named in ``flags``
    (out), each named like the unit's port that drives it.
    """

    def __init__(self, *flags):
        super().__init__({"error": Out(ErrorReport()), "halt": In(1), "busy": Out(1),
                          "pc": Out(32), **{flag: Out(1) for flag in flags}})


class ErrorControl(wiring.Component):
    """Halts the units, latches the first error, detects deadlock and completion.

    Ports
    -----
    start : In(1)
        Program start (one cycle, from a flip-flop): clears the flags and the error.
    start_d : In(1)
        ``start`` a cycle later (also the fetch unit's start).
    running : In(1)
        A program runs.
    fetch : In(UnitWatch("ended", "blocked", "queues_empty"))
    kv_load, kv_store : In(UnitWatch("waiting", "blocked"))
    load, compute : In(UnitWatch("waiting"))
    store : In(UnitWatch("waiting", "bus_busy"))
        The units: their error reports, busy/waiting flags and pcs in; ``halt`` out, from a
        flip-flop per unit.
    instr_stage_busy : In(3)
        The instruction stages (load, compute, store) hold an instruction.
    token_overflow : In(1)
        A token queue overflowed.
    read_busy, write_busy : In(1)
        The bus reader / writer (with their register stages) has a transfer in flight.
    err_latched : Out(1)
        An error was latched in this run (the units are halted).
    err_code : Out(ErrorCode)
        The first error's code, loaded two cycles after ``err_latched`` rises.
    err_pc : Out(32)
        The first error's instruction address, loaded with ``err_code``.
    finished : Out(1)
        The program has finished (``running`` goes low next cycle).
    """

    def __init__(self):
        super().__init__({
            "start": In(1), "start_d": In(1), "running": In(1),
            "fetch": In(UnitWatch("ended", "blocked", "queues_empty")),
            "kv_load": In(UnitWatch("waiting", "blocked")),
            "load": In(UnitWatch("waiting")),
            "compute": In(UnitWatch("waiting")),
            "kv_store": In(UnitWatch("waiting", "blocked")),
            "store": In(UnitWatch("waiting", "bus_busy")),
            "instr_stage_busy": In(3), "token_overflow": In(1),
            "read_busy": In(1), "write_busy": In(1),
            "err_latched": Out(1), "err_code": Out(ErrorCode), "err_pc": Out(32),
            "finished": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        start, start_d, running = self.start, self.start_d, self.running
        read_busy, write_busy = self.read_busy, self.write_busy
        fetch, kv_load, load, compute, kv_store, store = (getattr(self, n) for n in _UNITS)
        units = [getattr(self, n) for n in _UNITS]
        waiters = [getattr(self, n) for n in _WAITERS]
        err_latched, err_code, err_pc = self.err_latched, self.err_code, self.err_pc

        # Errors: the first one wins and halts everyone.
        any_error = Cat(*(u.error.valid for u in units)).any()
        overflow = self.token_overflow
        deadlock = Signal()
        oldest_waiting = Signal(32)
        # The halt the units see comes from flip-flops (registered errors, one flag per
        # unit): it reaches every unit's stall/enable logic, so it must not start from the
        # units' own error logic. The other units stop a cycle later than the faulting one
        # (which stops itself at once); a token pushed in that cycle is consumed no earlier
        # than the next, when every unit is halted, and the first error still wins (below).
        # One sticky flag per unit, set by the *other* units' errors (a unit that fails has
        # halted itself): the units then register different signals, which Yosys cannot merge
        # into one flip-flop driving every unit's stop logic across the chip.
        # A token overflow or a deadlock (errors of no unit) sets every unit's flag directly,
        # in the cycle it latches the error, so the latched error itself does not fan out
        # to every unit.
        for name, u in zip(_UNITS, units, strict=True):
            others = Cat(*(v.error.valid for v in units if v is not u)).any()
            halt_q = Signal(name=f"halt_{name}_q")
            m.d.sync += halt_q.eq((halt_q | others | (running & (overflow | deadlock))) &
                                  ~start)
            m.d.comb += u.halt.eq(halt_q)
        # The units' reports are registered before the choice (they stay valid, and halt
        # above does not wait for them); a report of the cycle before goes ahead of an
        # overflow or deadlock of this cycle, so the first error still wins.
        reports = []
        for name, u in zip(_UNITS, units, strict=True):
            seen = Signal(name=f"{name}_error_seen")
            code = Signal(ErrorCode, name=f"{name}_error_code")
            pc = Signal(32, name=f"{name}_error_pc")
            m.d.sync += [seen.eq(u.error.valid & ~start), code.eq(u.error.code),
                         pc.eq(u.error.pc)]
            reports.append((seen, code, pc))
        # The choice is registered as a one-hot (lowest priority first: overflow, deadlock,
        # then the units, fetch highest) and the winner's code and pc are loaded a cycle
        # later from registers that hold them meanwhile (a halted unit's report does not
        # change; the overflow and deadlock pcs are copied for it), so the choice does not run
        # into a wide multiplexer. STATUS shows DONE no earlier than two cycles after the
        # error is latched, with the code and pc loaded by then.
        ovf_pc, dl_pc = Signal(32), Signal(32)
        m.d.sync += [ovf_pc.eq(fetch.pc), dl_pc.eq(oldest_waiting)]
        sources = [(overflow, ErrorCode.TOKEN_OVERFLOW, ovf_pc),
                   (deadlock, ErrorCode.DEADLOCK, dl_pc), *reversed(reports)]
        pick = Signal(len(sources))
        capture = Signal()
        m.d.sync += capture.eq(0)
        with m.If(running & ~err_latched & Cat(*(s_[0] for s_ in sources)).any()):
            m.d.sync += [err_latched.eq(1), capture.eq(1)]
            for i, (cond, _, _) in enumerate(sources):
                higher = Cat(*(s_[0] for s_ in sources[i + 1:]))
                m.d.sync += pick[i].eq(cond & ~higher.any() if len(higher) else cond)
        with m.If(capture):
            m.d.sync += [
                err_code.as_value().eq(or_tree([
                    Mux(pick[i], code.value if isinstance(code, ErrorCode) else code.as_value(), 0)
                    for i, (_, code, _) in enumerate(sources)])),
                err_pc.eq(or_tree([Mux(pick[i], pc, 0) for i, (_, _, pc) in enumerate(sources)]))]
        with m.If(start):
            m.d.sync += [err_latched.eq(0), err_code.eq(ErrorCode.NONE), err_pc.eq(0)]

        # The units' busy/waiting flags, registered (cleared by start) before the deadlock and
        # completion checks use them: each unit's term in its own flip-flop first, so the
        # units' logic ends there, then their AND / OR in a second one (a cycle later).
        # A term sampled while ``start`` is high is dropped in the second step (start_d is
        # start a cycle later), so the first needs no gate.
        def late(terms, name, reduce):
            qs = []
            for i, term in enumerate(terms):
                q = Signal(name=f"{name}_{i}")
                m.d.sync += q.eq(term)
                qs.append(q)
            q = Signal(name=name)
            m.d.sync += q.eq(reduce(Cat(*qs)) & ~start & ~start_d)
            return q

        quiet = late([(~load.busy | load.waiting), (~compute.busy | compute.waiting),
                      (~store.busy | store.waiting),
                      *(~c.busy | c.blocked | c.waiting for c in (kv_load, kv_store)),
                      (fetch.ended | fetch.blocked), ~fetch.busy, ~read_busy, ~write_busy],
                     "quiet_q", lambda v: v.all())
        someone_waits = late([u.waiting for u in waiters], "someone_waits_q", lambda v: v.any())

        # Deadlock: nothing can move for several cycles while someone waits for a token.
        stuck = Signal()
        m.d.comb += stuck.eq(running & ~err_latched & quiet & someone_waits)
        # The oldest instruction still waiting for its token is reported: the lowest pc of a
        # waiting unit, the earlier unit in this order on a tie. A tree of registered pairwise
        # choices; nothing moves while stuck, so it has long settled when DEADLOCK is raised.
        level = []
        for u in waiters:
            found, pc = Signal(), Signal(32)
            m.d.sync += [found.eq(u.waiting), pc.eq(u.pc)]
            level.append((found, pc))
        while len(level) > 1:
            paired = []
            for i in range(0, len(level), 2):
                found, pc = Signal(), Signal(32)
                if i + 1 < len(level):
                    (fa, pa), (fb, pb) = level[i], level[i + 1]
                    take_b = fb & (~fa | (pb < pa))
                    m.d.sync += [found.eq(fa | fb), pc.eq(Mux(take_b, pb, pa))]
                else:
                    m.d.sync += [found.eq(level[i][0]), pc.eq(level[i][1])]
                paired.append((found, pc))
            level = paired
        m.d.comb += oldest_waiting.eq(level[0][1])
        # Counted one cycle late (stuck registered first): the units' busy/waiting logic ends
        # in a flip-flop.
        stuck_q = Signal()
        m.d.sync += stuck_q.eq(stuck & ~start)
        stuck_for = Signal(range(DEADLOCK_CYCLES + 1))
        m.d.sync += stuck_for.eq(Mux(stuck_q, stuck_for + (stuck_for != DEADLOCK_CYCLES), 0))
        m.d.comb += deadlock.eq(stuck_for == DEADLOCK_CYCLES)

        # Completion.
        all_idle = late([~load.busy, ~compute.busy, ~store.busy, ~fetch.busy, ~kv_load.busy,
                         ~kv_store.busy, fetch.queues_empty,
                         *(~busy for busy in self.instr_stage_busy), ~read_busy, ~write_busy,
                         fetch.ended, ~any_error], "all_idle_q", lambda v: v.all())
        # Both ways to finish are registered conditions, so completion is seen a cycle or two
        # later. Once true they stay true: idle units start nothing, and the bus is sampled
        # while the units are already halted (err_latched), so no request can slip in.
        ended_idle = Signal()
        bus_quiet = Signal()
        m.d.sync += [ended_idle.eq(all_idle & ~start),
                     bus_quiet.eq(err_latched & ~start & ~read_busy & ~write_busy &
                                  ~store.bus_busy)]
        m.d.comb += self.finished.eq(running & ~start & (
            (ended_idle & ~err_latched) | (err_latched & bus_quiet)))
        return m
