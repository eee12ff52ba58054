"""cocotb tests of the whole accelerator in Verilator, against the golden ISA simulator.

The configuration comes from ``$OCTET_CONFIG`` (JSON of :class:`AcceleratorConfig` fields);
``$OCTET_SEED`` varies the random data. Device memory is a cocotbext-axi ``AxiRam`` with
random backpressure on every AXI channel; the host side is the ordinary blocking runtime
(:mod:`octet.host`) driving :class:`~octet.sim.verilator_device.VerilatorDevice` through
``cocotb.bridge``. Reference: :class:`octet.host.device.GoldenDevice` running the same program
on the same initial memory, compared byte for byte. Run by ``tests/test_accelerator_rtl.py``.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge

from octet import isa
from octet.config import AcceleratorConfig
from octet.host.device import AcceleratorError, GoldenDevice
from octet.isa import Opcode
from octet.sim.axi_models import attach_axi_ram, attach_axil_master, reset
from octet.sim.random_programs import random_program, scrub_program
from octet.sim.verilator_device import VerilatorDevice


def _config():
    return AcceleratorConfig(**json.loads(os.environ.get("OCTET_CONFIG", "{}")))


def _seed(salt):
    return int(os.environ.get("OCTET_SEED", "1")) * 1000 + salt


async def _setup(dut, pause=0.0, salt=0):
    cfg = _config()
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    rng = random.Random(_seed(salt))
    ram = attach_axi_ram(dut, size=cfg.mem_bytes, pause=pause, rng=rng)
    axil = attach_axil_master(dut)
    await reset(dut)
    return cfg, VerilatorDevice(dut, axil, ram), ram, rng


def _gemm_program(cfg, m, k, n, base=0x1000):
    """A hand-written single-tile-block GEMM: A (m, k) and B (k, n) row-major, int32 out."""
    R, C = cfg.rows, cfg.cols
    a_addr, b_addr, c_addr, prog = base, base + 0x4000, base + 0x8000, base + 0xC000
    kt, nt = -(-k // R), -(-n // C)
    a_rows = kt                      # spad rows per activation row
    program = [
        (Opcode.LOAD, dict(target=isa.Target.INPUT, spad_addr=0, spad_stride=a_rows, rows=m,
                           row_bytes=k, dram_addr=a_addr, dram_stride=k)),
        (Opcode.LOAD, dict(target=isa.Target.WEIGHT, spad_addr=0, spad_stride=nt, rows=k,
                           row_bytes=n, dram_addr=b_addr, dram_stride=n, push_next=1)),
        (Opcode.GEMM, dict(pop_prev=1, push_next=1, m=m, acc_addr=0, a_addr=0,
                           a_stride=a_rows, w_addr=0, w_stride=nt, k_tiles=kt, a_k_step=1,
                           w_k_step=R * nt, n_tiles=nt, w_n_step=1, acc_n_step=m)),
        (Opcode.STORE, dict(pop_prev=1, mode=isa.StoreMode.INT32, acc_addr=0,
                            acc_n_step=m, rows=m, cols=n, dram_addr=c_addr,
                            dram_stride=4 * n)),
        (Opcode.END, {}),
    ]
    return program, a_addr, b_addr, c_addr, prog


@cocotb.test()
async def smoke_gemm(dut):
    """A hand-written LOAD, LOAD, GEMM, STORE program gives A @ B (no stalls)."""
    cfg, dev, ram, rng = await _setup(dut)
    nprng = np.random.default_rng(_seed(1))
    m, k, n = 5, 2 * cfg.rows + 1, cfg.cols + 2
    a = nprng.integers(-128, 128, (m, k), dtype=np.int8)
    b = nprng.integers(-128, 128, (k, n), dtype=np.int8)
    program, a_addr, b_addr, c_addr, prog = _gemm_program(cfg, m, k, n)

    def host():
        found = dev.identify()
        assert (found.rows, found.cols) == (cfg.rows, cfg.cols), found
        dev.write_mem(a_addr, a.tobytes())
        dev.write_mem(b_addr, b.tobytes())
        dev.write_program(prog, program)
        result = dev.run(prog, timeout_cycles=200_000)
        out = np.frombuffer(dev.read_mem(c_addr, 4 * m * n), dtype="<i4").reshape(m, n)
        return out, result

    out, result = await bridge(host)()
    np.testing.assert_array_equal(out, a.astype(np.int64) @ b.astype(np.int64))
    dut._log.info("counters %s", result.counters)
    assert result.counters["instructions"] == len(program)


def _scrubbed_golden(cfg, dev):
    """A golden device and the RTL device, both with zeroed scratchpads and accumulator."""
    golden = GoldenDevice(cfg)
    program = isa.encode_program(scrub_program(cfg, zero_addr=0))
    for device in (golden, dev):
        device.write_mem(0, bytes(64))
        device.write_program(0x1000, program)
        device.run(0x1000, timeout_cycles=4 * (cfg.input_rows + cfg.weight_rows +
                                               cfg.acc_rows) + 10_000)
    return golden


def _run_both(cfg, dev, image, writes, prog_addr, golden):
    """Run one program on the golden device and (blocking, in a bridge thread) on the RTL.

    Scratchpads and accumulator keep their contents from program to program on both, so one
    ``golden`` device must serve the whole sequence that ``dev`` runs. After a program that
    succeeds, the whole accumulator is stored to the upper half of memory on both as well.

    Returns ``(golden_outcome, rtl_outcome)``; an outcome is ``("ok", counters, memory)`` or
    ``("error", code, fault_pc, memory)``.
    """
    dump = [(Opcode.STORE, dict(rows=cfg.acc_rows, cols=cfg.cols, acc_n_step=0,
                                dram_addr=cfg.mem_bytes // 2 + 0x1000,
                                dram_stride=4 * cfg.cols)), (Opcode.END, {})]

    def outcome(device):
        device.write_mem(0, image)
        for addr, blob in writes:
            device.write_mem(addr, blob)
        try:
            result = device.run(prog_addr, timeout_cycles=2_000_000)
            # Expose the whole accumulator too, so state that no STORE showed is compared.
            device.write_program(cfg.mem_bytes // 2, dump)
            device.run(cfg.mem_bytes // 2, timeout_cycles=2_000_000)
            return ("ok", result.counters, device.read_mem(0, cfg.mem_bytes))
        except AcceleratorError as exc:
            return ("error", exc.code, exc.fault_pc, device.read_mem(0, cfg.mem_bytes))

    return outcome(golden), outcome(dev)


def _compare(golden, rtl, what):
    assert golden[0] == rtl[0], f"{what}: golden {golden[:3]} but RTL {rtl[:3]}"
    if golden[0] == "error":
        assert golden[1:3] == rtl[1:3], f"{what}: golden error {golden[1:3]}, RTL {rtl[1:3]}"
    else:
        for key in ("bytes_written", "instructions", "compute_cycles"):
            assert golden[1][key] == rtl[1][key], \
                f"{what}: counter {key} golden {golden[1][key]} RTL {rtl[1][key]}"
    g = np.frombuffer(golden[-1], np.uint8)
    r = np.frombuffer(rtl[-1], np.uint8)
    diff = np.flatnonzero(g != r)
    assert diff.size == 0, (f"{what}: {diff.size} bytes differ, first at 0x{diff[0]:x} "
                            f"(golden {g[diff[0]]}, RTL {r[diff[0]]})")


async def _random_programs(dut, pause, salt, count):
    cfg, dev, ram, rng = await _setup(dut, pause=pause, salt=salt)
    nprng = np.random.default_rng(_seed(salt))

    def host():
        golden_dev = _scrubbed_golden(cfg, dev)
        for i in range(count):
            prog, params, lay = random_program(cfg, nprng, phases=int(nprng.integers(1, 4)))
            image = nprng.integers(0, 256, cfg.mem_bytes, dtype=np.uint8).tobytes()
            writes = [(lay.params, params), (lay.program, isa.encode_program(prog))]
            golden, rtl = _run_both(cfg, dev, image, writes, lay.program, golden_dev)
            try:
                _compare(golden, rtl, f"program {i} ({len(prog)} instructions)")
            except AssertionError:
                # Keep the case for replay (the cocotb run's folder is the test folder).
                np.savez(f"failing_program_{salt}_{i}.npz", image=np.frombuffer(image, np.uint8),
                         program=np.frombuffer(writes[1][1], np.uint8),
                         params=np.frombuffer(params, np.uint8), prog_addr=lay.program,
                         params_addr=lay.params, rtl=np.frombuffer(rtl[-1], np.uint8))
                raise
    await bridge(host)()


@cocotb.test()
async def random_programs_no_stalls(dut):
    """Random valid programs; whole memory image equal to the golden simulator's."""
    await _random_programs(dut, 0.0, 2, 12)


@cocotb.test()
async def random_programs_axi_backpressure(dut):
    """Random programs with random stalls on every AXI channel of the memory."""
    await _random_programs(dut, 0.3, 3, 8)


def _error_programs(cfg):
    """(name, instructions, prog_addr offset) of programs that must stop with an error."""
    R, C = cfg.rows, cfg.cols
    ok_load = dict(target=isa.Target.INPUT, rows=1, row_bytes=R, dram_addr=0x1000,
                   dram_stride=R, spad_stride=1)
    return [
        ("illegal opcode", [(Opcode.LOAD, ok_load), None, (Opcode.END, {})]),
        ("malformed gemm", [(Opcode.GEMM, dict(m=0, k_tiles=1, n_tiles=1))]),
        ("flag not allowed", [(Opcode.LOAD, dict(ok_load, pop_prev=1))]),
        ("input spad range", [(Opcode.LOAD, dict(ok_load, spad_addr=cfg.input_rows - 1,
                                                 rows=2, spad_stride=1))]),
        ("acc range", [(Opcode.GEMM, dict(m=4, k_tiles=1, n_tiles=1, w_stride=1,
                                          acc_addr=cfg.acc_rows - 2))]),
        ("dram range load", [(Opcode.LOAD, dict(ok_load, dram_addr=cfg.mem_bytes - 2))]),
        ("dram range store", [(Opcode.STORE, dict(rows=2, cols=C, dram_addr=cfg.mem_bytes - 8,
                                                  dram_stride=4 * C))]),
        ("misaligned params", [("params", 0x3000, 0), (Opcode.STORE, dict(
            mode=isa.StoreMode.INT8, rows=1, cols=1, dram_addr=0x2000, param_addr=0x3004))]),
        ("reserved bits", [("raw", isa.encode(Opcode.GEMM, m=1, k_tiles=1, n_tiles=1,
                                               w_stride=1) | 1 << isa.LAYOUTS[Opcode.GEMM]
                             ["reserved"].offset)]),
        ("overlapping store rows", [(Opcode.STORE, dict(rows=2, cols=C, dram_addr=0x2000,
                                                        dram_stride=3))]),
        ("bad shift", [("params", 0x3000, 40), (Opcode.STORE, dict(
            mode=isa.StoreMode.INT8, rows=1, cols=2 * C + 1, dram_addr=0x2000,
            param_addr=0x3000))]),
        ("parameter slots out of range", [("params", 0x3000, 0), (Opcode.STORE, dict(
            mode=isa.StoreMode.INT8, rows=1, cols=2, dram_addr=0x2000, param_addr=0x3000,
            param_src=isa.ParamSource.KEEP, param_slot=cfg.param_slots - 1))]),
        ("unassigned parameter source", [(Opcode.STORE, dict(
            mode=isa.StoreMode.INT8, rows=1, cols=1, dram_addr=0x2000, param_src=3))]),
        ("deadlock", [(Opcode.GEMM, dict(m=1, k_tiles=1, n_tiles=1, w_stride=1,
                                         pop_prev=1))]),
        ("store waits forever", [(Opcode.LOAD, dict(ok_load, push_next=1)),
                                 (Opcode.STORE, dict(rows=1, cols=1, dram_addr=0x2000,
                                                     pop_prev=1))]),
    ]


@cocotb.test()
async def error_cases(dut):
    """Each error stops with the golden code and faulting address; memory equals golden."""
    cfg, dev, ram, rng = await _setup(dut, salt=4)
    nprng = np.random.default_rng(_seed(4))
    prog_addr = 0x8000

    def host():
        golden_dev = _scrubbed_golden(cfg, dev)
        for name, instructions in _error_programs(cfg):
            image = bytearray(nprng.integers(0, 256, cfg.mem_bytes, dtype=np.uint8).tobytes())
            blob = b""
            for ins in instructions:
                if ins is None:
                    blob += bytes(isa.INSTRUCTION_BYTES)
                elif ins[0] == "raw":
                    blob += ins[1].to_bytes(isa.INSTRUCTION_BYTES, "little")
                elif ins[0] == "params":
                    # valid records except the last one, whose shift is out of range
                    _, addr, shift = ins
                    for c in range(2 * cfg.cols + 1):
                        image[addr + 16 * c:addr + 16 * c + 16] = bytes(16)
                        image[addr + 16 * c] = 1
                    image[addr + 16 * (2 * cfg.cols) + 8] = shift
                else:
                    blob += isa.encode_program([ins])
            blob += isa.encode_program([(Opcode.END, {})])
            golden, rtl = _run_both(cfg, dev, bytes(image), [(prog_addr, blob)], prog_addr,
                                    golden_dev)
            assert golden[0] == "error", f"{name}: golden did not fail"
            _compare(golden, rtl, name)
        # A program running off the end of memory, and a misaligned program base.
        image = bytes(cfg.mem_bytes)
        tail = cfg.mem_bytes - isa.INSTRUCTION_BYTES
        nop = isa.encode_program([(Opcode.LOAD, dict(target=isa.Target.INPUT, rows=1,
                                                     row_bytes=1, spad_stride=1))])
        golden, rtl = _run_both(cfg, dev, image, [(tail, nop)], tail, golden_dev)
        _compare(golden, rtl, "runs off the end of memory")
        golden, rtl = _run_both(cfg, dev, image, [], 0x1010, golden_dev)
        _compare(golden, rtl, "misaligned program base")
    await bridge(host)()


@cocotb.test()
async def queued_instruction_after_error(dut):
    """An instruction left in a unit's instruction stage when a program stops with an error
    (here a GEMM behind one that deadlocks) does not run at the next program's start: the
    accumulator after a following empty program equals golden."""
    cfg, dev, ram, rng = await _setup(dut, salt=6)
    nprng = np.random.default_rng(_seed(6))
    R, C = cfg.rows, cfg.cols
    gemm = dict(m=1, k_tiles=1, n_tiles=1, w_stride=1)
    programs = [
        ("random operands", [
            (Opcode.LOAD, dict(target=isa.Target.INPUT, rows=1, row_bytes=R, dram_addr=0x1000,
                               dram_stride=R, spad_stride=1)),
            (Opcode.LOAD, dict(target=isa.Target.WEIGHT, rows=R, row_bytes=C,
                               dram_addr=0x1100, dram_stride=C, spad_stride=1))]),
        ("deadlock with a GEMM queued", [(Opcode.GEMM, dict(gemm, pop_prev=1)),
                                         (Opcode.GEMM, gemm)]),
        ("empty program", []),
    ]
    prog_addr = 0x8000

    def host():
        golden_dev = _scrubbed_golden(cfg, dev)
        for name, instructions in programs:
            image = nprng.integers(0, 256, cfg.mem_bytes, dtype=np.uint8).tobytes()
            blob = isa.encode_program([*instructions, (Opcode.END, {})])
            golden, rtl = _run_both(cfg, dev, image, [(prog_addr, blob)], prog_addr,
                                    golden_dev)
            _compare(golden, rtl, name)
    await bridge(host)()


@cocotb.test()
async def many_queued_loads(dut):
    """More instructions than the load queue holds, each with long reads: no head-of-line
    blocking between instruction fetch and load data on the shared read channel."""
    cfg, dev, ram, rng = await _setup(dut, salt=5)
    load = (Opcode.LOAD, dict(target=isa.Target.WEIGHT, rows=20, row_bytes=3 * cfg.cols,
                              dram_addr=0x1200, dram_stride=9 * cfg.cols, spad_stride=3))
    program = isa.encode_program([load] * 24 + [(Opcode.END, {})])

    def host():
        golden_dev = _scrubbed_golden(cfg, dev)
        image = np.random.default_rng(_seed(5)).integers(0, 256, cfg.mem_bytes,
                                                         dtype=np.uint8).tobytes()
        golden, rtl = _run_both(cfg, dev, image, [(0x8000, program)], 0x8000, golden_dev)
        _compare(golden, rtl, "24 queued loads")
    await bridge(host)()
