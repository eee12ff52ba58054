"""Tests of the golden functional simulator (``octet.sim.isa_sim``) and the Device API.

Each data instruction is checked against a direct, loop-by-loop NumPy transcription of its
definition in ``docs/isa.md`` with random fields, on an R != C array so that rows and columns
cannot be confused. Memory starts filled with a guard byte and the scratchpads and accumulator
with random data, so every test also checks that nothing outside the written region changed.
Every error code is provoked (each MALFORMED rule, each range, deadlock, token overflow) and
checked for STATUS, FAULT_PC, the simulator's explanation and an unchanged machine state.
The counters and the cycle model are checked for the exact values and properties the
documentation states; the Device API for identification, errors, timeouts and interrupts.
"""

import numpy as np
import pytest

from octet import isa
from octet.config import AcceleratorConfig
from octet.host.device import AcceleratorError, Device, DeviceError, DeviceTimeout, GoldenDevice
from octet.isa import Ctrl, ErrorCode, Opcode, Reg, Status
from octet.numerics import RequantParams
from octet.sim import golden
from octet.sim.isa_sched import DMA_LATENCY, estimate_cycles, instruction_cost
from octet.sim.isa_sim import IsaSimulator

CFG = AcceleratorConfig(rows=4, cols=8, input_rows=64, weight_rows=64, acc_rows=32,
                        bus_bytes=8, mem_bytes=1 << 16)
R, C = CFG.rows, CFG.cols
PROG = 0xE000          # programs live here; [PROG, PROG_END) is excluded from guard checks
PROG_END = 0x10000
GUARD = 0xA5
LOAD, IM2COL, GEMM, STORE, END = (Opcode.LOAD, Opcode.IM2COL, Opcode.GEMM, Opcode.STORE,
                                  Opcode.END)
DONE = Status.DONE.value


def make_sim(rng, config=CFG, timed=False):
    sim = IsaSimulator(config, timed=timed)
    sim.memory[:] = GUARD
    sim.input_spad[:] = rng.integers(-128, 128, sim.input_spad.shape)
    sim.weight_spad[:] = rng.integers(-128, 128, sim.weight_spad.shape)
    sim.acc[:] = rng.integers(-2**31, 2**31, sim.acc.shape)
    return sim


def run(sim, program, base=PROG):
    sim.write_mem(base, isa.encode_program(program))
    return sim.run(base)


def snapshot(sim):
    return {"memory": np.concatenate([sim.memory[:PROG], sim.memory[PROG_END:]]),
            "input": sim.input_spad.copy(), "weight": sim.weight_spad.copy(),
            "acc": sim.acc.copy()}


def assert_state(sim, expected):
    now = snapshot(sim)
    for key, value in expected.items():
        np.testing.assert_array_equal(now[key], value, err_msg=key)


def error_status(code):
    return (Status.DONE | Status.ERROR).value | code.value << 8


# --- LOAD ------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [isa.Target.INPUT, isa.Target.WEIGHT])
def test_load(target, seed):
    rng = np.random.default_rng(seed)
    width = R if target is isa.Target.INPUT else C
    for _ in range(25):
        sim = make_sim(rng)
        sim.memory[:0x4000] = rng.integers(0, 256, 0x4000)
        rows, row_bytes = int(rng.integers(1, 6)), int(rng.integers(1, 3 * width + 1))
        per = -(-row_bytes // width)
        stride = per + int(rng.integers(0, 3)) if rows > 1 else int(rng.integers(0, 9))
        spad_addr = int(rng.integers(0, 64 - (rows - 1) * stride - per + 1))
        f = dict(target=target, spad_addr=spad_addr, spad_stride=stride, rows=rows,
                 row_bytes=row_bytes, dram_addr=int(rng.integers(0, 0x3000)),
                 dram_stride=int(rng.integers(0, 64)))
        before = snapshot(sim)
        assert run(sim, [(LOAD, f), (END, {})]) == DONE
        key = "input" if target is isa.Target.INPUT else "weight"
        for i in range(rows):
            src = f["dram_addr"] + i * f["dram_stride"]
            row = np.zeros(per * width, np.uint8)
            row[:row_bytes] = before["memory"][src:src + row_bytes]
            for j in range(per):
                before[key][spad_addr + i * stride + j] = row[j * width:(j + 1) * width]
        assert_state(sim, before)
        assert sim.counters["bytes_read"] == 64 + rows * row_bytes


# --- IM2COL ----------------------------------------------------------------------------------

def im2col_reference(mem, f):
    cc = -(-f["channels"] // R)
    rows = []
    for q in range(f["count"]):
        lin = f["oy0"] * f["out_w"] + f["ox0"] + q
        oy, ox = divmod(lin, f["out_w"])
        for ky in range(f["kernel_h"]):
            for kx in range(f["kernel_w"]):
                for c0 in range(cc):
                    row = np.zeros(R, np.uint8)
                    iy = oy * f["stride"] + ky - f["pad"]
                    ix = ox * f["stride"] + kx - f["pad"]
                    for r in range(R):
                        c = c0 * R + r
                        if 0 <= iy < f["height"] and 0 <= ix < f["width"] and c < f["channels"]:
                            row[r] = mem[f["x_addr"] + (iy * f["width"] + ix) * f["channels"] + c]
                    rows.append(row)
    return np.array(rows).view(np.int8)


def test_im2col(seed):
    rng = np.random.default_rng(seed)
    for _ in range(30):
        sim = make_sim(rng)
        f = dict(height=int(rng.integers(1, 7)), width=int(rng.integers(1, 7)),
                 channels=int(rng.integers(1, 10)), kernel_h=int(rng.integers(1, 4)),
                 kernel_w=int(rng.integers(1, 4)), stride=int(rng.integers(1, 4)),
                 pad=int(rng.integers(0, 3)), out_w=int(rng.integers(1, 7)),
                 oy0=int(rng.integers(0, 4)), x_addr=int(rng.integers(0, 0x1000)))
        f["ox0"] = int(rng.integers(0, f["out_w"]))
        per = f["kernel_h"] * f["kernel_w"] * -(-f["channels"] // R)
        if per > 64:
            continue
        f["count"] = int(rng.integers(1, 64 // per + 1))
        f["spad_addr"] = int(rng.integers(0, 64 - f["count"] * per + 1))
        image = f["height"] * f["width"] * f["channels"]
        sim.memory[f["x_addr"]:f["x_addr"] + image] = rng.integers(0, 256, image)
        before = snapshot(sim)
        assert run(sim, [(IM2COL, f), (END, {})]) == DONE
        expect = im2col_reference(before["memory"], f)
        before["input"][f["spad_addr"]:f["spad_addr"] + len(expect)] = expect
        assert_state(sim, before)


def test_im2col_reads_only_in_image_pixels():
    sim = make_sim(np.random.default_rng(0))
    # 3x3 kernel, pad 1 over a 2x2 image of 3 channels: the first output pixel sees 4 pixels.
    f = dict(spad_addr=0, count=1, x_addr=0x100, height=2, width=2, channels=3, kernel_h=3,
             kernel_w=3, stride=1, pad=1, out_w=2)
    assert run(sim, [(IM2COL, f), (END, {})]) == DONE
    assert sim.counters["bytes_read"] == 2 * 32 + 4 * 3


# --- GEMM ------------------------------------------------------------------------------------

def gemm_reference(inp, wgt, acc, f):
    acc = acc.astype(np.int64)
    for nt in range(f["n_tiles"]):
        for kt in range(f["k_tiles"]):
            for i in range(f["m"]):
                a = inp[f["a_addr"] + kt * f["a_k_step"] + i * f["a_stride"]].astype(np.int64)
                s = np.zeros(C, np.int64)
                for r in range(R):
                    w = wgt[f["w_addr"] + kt * f["w_k_step"] + nt * f["w_n_step"]
                            + r * f["w_stride"]].astype(np.int64)
                    s += a[r] * w
                row = f["acc_addr"] + nt * f["acc_n_step"] + i
                if f["accumulate"] or kt > 0:
                    s += acc[row]
                acc[row] = golden.wrap_int32(s)
    return acc.astype(np.int32)


def test_gemm(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        sim = make_sim(rng)
        m, kt, nt = (int(x) for x in rng.integers(1, 5, 3))
        f = dict(m=m, k_tiles=kt, n_tiles=nt, accumulate=int(rng.integers(0, 2)),
                 a_stride=int(rng.integers(0, 4)), a_k_step=int(rng.integers(0, 5)),
                 w_stride=int(rng.integers(0, 3)), w_k_step=int(rng.integers(0, 9)),
                 w_n_step=int(rng.integers(0, 4)), acc_n_step=int(rng.integers(0, 6)))
        f["a_addr"] = int(rng.integers(0, 64 - (kt - 1) * f["a_k_step"]
                                       - (m - 1) * f["a_stride"]))
        f["w_addr"] = int(rng.integers(0, 64 - (kt - 1) * f["w_k_step"]
                                       - (nt - 1) * f["w_n_step"] - (R - 1) * f["w_stride"]))
        f["acc_addr"] = int(rng.integers(0, 32 - (nt - 1) * f["acc_n_step"] - m + 1))
        before = snapshot(sim)
        assert run(sim, [(GEMM, f), (END, {})]) == DONE
        before["acc"] = gemm_reference(before["input"], before["weight"], before["acc"], f)
        assert_state(sim, before)
        assert sim.counters["compute_cycles"] == m * kt * nt


def test_gemm_extremes_wrap():
    sim = make_sim(np.random.default_rng(0))
    sim.input_spad[:] = -128
    sim.weight_spad[:] = -128
    sim.acc[:] = 2**31 - 1
    f = dict(m=2, k_tiles=3, n_tiles=1, accumulate=1, a_stride=3, a_k_step=1, w_stride=1,
             w_k_step=R)
    assert run(sim, [(GEMM, f), (END, {})]) == DONE
    expect = golden.wrap_int32(2**31 - 1 + 3 * R * 128 * 128)
    assert (sim.acc[:2] == expect).all()


# --- STORE -----------------------------------------------------------------------------------

def test_store_int32(seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        sim = make_sim(rng)
        rows, cols = int(rng.integers(1, 5)), int(rng.integers(1, 3 * C + 1))
        nt = -(-cols // C)
        f = dict(mode=isa.StoreMode.INT32, rows=rows, cols=cols,
                 acc_n_step=int(rng.integers(rows if nt > 1 else 0, 8)),
                 dram_stride=4 * cols + int(rng.integers(0, 9)),
                 dram_addr=int(rng.integers(0, 0x2000)))
        f["acc_addr"] = int(rng.integers(0, 32 - (nt - 1) * f["acc_n_step"] - rows + 1))
        before = snapshot(sim)
        assert run(sim, [(STORE, f), (END, {})]) == DONE
        for i in range(rows):
            for j in range(cols):
                value = before["acc"][f["acc_addr"] + (j // C) * f["acc_n_step"] + i][j % C]
                at = f["dram_addr"] + i * f["dram_stride"] + 4 * j
                before["memory"][at:at + 4] = np.frombuffer(
                    int(value).to_bytes(4, "little", signed=True), np.uint8)
        assert_state(sim, before)
        assert sim.counters["bytes_written"] == rows * cols * 4


@pytest.mark.parametrize("zero_point, relu", [(0, False), (-7, True), (100, False)])
def test_store_int8(zero_point, relu, seed):
    rng = np.random.default_rng(seed)
    sim = make_sim(rng)
    rows, cols = 3, 11
    params = RequantParams.create(
        multiplier=rng.integers(2**30, 2**31, cols), shift=rng.integers(-31, 31, cols),
        bias=rng.integers(-2**20, 2**20, cols), zero_point=zero_point, relu=relu)
    records = np.zeros((cols, 16), np.uint8)
    for j in range(cols):
        records[j, 0:4] = np.frombuffer(int(params.multiplier[j]).to_bytes(4, "little",
                                                                          signed=True), np.uint8)
        records[j, 4:8] = np.frombuffer(int(params.bias[j]).to_bytes(4, "little", signed=True),
                                        np.uint8)
        records[j, 8] = int(params.shift[j]) & 0xFF
    sim.write_mem(0x3000, records.tobytes())
    f = dict(mode=isa.StoreMode.INT8, rows=rows, cols=cols, acc_addr=5, acc_n_step=rows,
             dram_addr=0x101, dram_stride=13, param_addr=0x3000, zero_point=zero_point,
             relu=int(relu))
    before = snapshot(sim)
    assert run(sim, [(STORE, f), (END, {})]) == DONE
    values = np.array([[before["acc"][5 + (j // C) * rows + i][j % C] for j in range(cols)]
                       for i in range(rows)])
    out = golden.requantize(values, params)
    for i in range(rows):
        before["memory"][0x101 + 13 * i:0x101 + 13 * i + cols] = out[i].view(np.uint8)
    assert_state(sim, before)
    assert sim.counters["bytes_read"] == 2 * 32 + 16 * cols
    assert sim.counters["bytes_written"] == rows * cols


# --- errors ----------------------------------------------------------------------------------

L1 = dict(target=0, rows=1, row_bytes=1, spad_stride=1)
G1 = dict(m=1, k_tiles=1, n_tiles=1)
S1 = dict(rows=1, cols=1)
I1 = dict(count=1, height=1, width=1, channels=1, kernel_h=1, kernel_w=1, stride=1, out_w=1)
MALFORMED, SPAD, DRAM = ErrorCode.MALFORMED, ErrorCode.SPAD_RANGE, ErrorCode.DRAM_RANGE

ERROR_CASES = [
    (LOAD, dict(L1, target=2), MALFORMED, "LOAD target 2 is not assigned"),
    (LOAD, dict(L1, rows=0), MALFORMED, "LOAD rows is 0"),
    (LOAD, dict(L1, row_bytes=0), MALFORMED, "LOAD row_bytes is 0"),
    (LOAD, dict(L1, rows=2, row_bytes=9, spad_stride=2), MALFORMED,
     "LOAD spad_stride 2 < 3 scratchpad rows per DRAM row"),
    *[(IM2COL, dict(I1, **{name: 0}), MALFORMED, f"IM2COL {name} is 0")
      for name in ("count", "height", "width", "channels", "kernel_h", "kernel_w", "stride",
                   "out_w")],
    (IM2COL, dict(I1, out_w=3, ox0=3), MALFORMED, "IM2COL ox0 3 is not below out_w 3"),
    *[(GEMM, dict(G1, **{name: 0}), MALFORMED, f"GEMM {name} is 0")
      for name in ("m", "k_tiles", "n_tiles")],
    (STORE, dict(S1, mode=2), MALFORMED, "STORE mode 2 is not assigned"),
    (STORE, dict(S1, rows=0), MALFORMED, "STORE rows is 0"),
    (STORE, dict(S1, cols=0), MALFORMED, "STORE cols is 0"),
    (STORE, dict(S1, cols=33 * C), MALFORMED, "STORE cols 264 need 33 n-tiles, more than 32"),
    (STORE, dict(S1, rows=2, cols=2, dram_stride=7), MALFORMED,
     "STORE dram_stride 7 < 8 bytes per row"),
    (STORE, dict(S1, rows=2, cols=3, mode=1, dram_stride=2), MALFORMED,
     "STORE dram_stride 2 < 3 bytes per row"),
    (STORE, dict(S1, mode=1, param_addr=0x208), MALFORMED,
     "STORE param_addr 0x208 is not 16-byte aligned"),
    (LOAD, dict(L1, pop_prev=1), MALFORMED, "LOAD may not set header flag(s) pop_prev"),
    (IM2COL, dict(I1, push_prev=1), MALFORMED, "IM2COL may not set header flag(s) push_prev"),
    (STORE, dict(S1, pop_next=1, push_next=1), MALFORMED,
     "STORE may not set header flag(s) pop_next, push_next"),
    (END, dict(push_prev=1), MALFORMED, "END may not set header flag(s) push_prev"),
    (LOAD, dict(L1, spad_addr=63, row_bytes=5), SPAD, "input scratchpad row 64 is outside"),
    (LOAD, dict(L1, target=1, rows=3, spad_addr=3, spad_stride=31), SPAD,
     "weight scratchpad row 65 is outside its 64 rows"),
    (IM2COL, dict(I1, count=8, channels=5, kernel_h=2, kernel_w=2, spad_addr=1), SPAD,
     "input scratchpad row 64 is outside its 64 rows"),
    (GEMM, dict(G1, m=3, a_stride=31, a_addr=2), SPAD, "input scratchpad row 64"),
    (GEMM, dict(G1, k_tiles=2, w_k_step=61, w_stride=1), SPAD,
     "weight scratchpad row 64 is outside its 64 rows"),
    (GEMM, dict(G1, n_tiles=2, w_n_step=1, w_stride=21, w_addr=1), SPAD,
     "weight scratchpad row 65 is outside its 64 rows"),
    (GEMM, dict(G1, m=2, n_tiles=3, acc_n_step=16), SPAD,
     "accumulator row 33 is outside its 32 rows"),
    (STORE, dict(S1, rows=2, cols=9, acc_addr=15, acc_n_step=16, dram_stride=64), SPAD,
     "accumulator row 32 is outside its 32 rows"),
    (LOAD, dict(L1, dram_addr=0xFFFF, row_bytes=2), DRAM,
     "LOAD source bytes [0xffff, 0x10001) leave [0, MEM_LIMIT = 0x10000)"),
    (LOAD, dict(L1, rows=2, dram_stride=0xFFFF_FFFF), DRAM, "LOAD source bytes"),
    (IM2COL, dict(I1, x_addr=0xFFFF, channels=2), DRAM,
     "IM2COL source image bytes [0xffff, 0x10001)"),
    (STORE, dict(S1, dram_addr=0xFFFD), DRAM, "STORE destination bytes [0xfffd, 0x10001)"),
    (STORE, dict(S1, mode=1, cols=2, param_addr=0xFFF0), DRAM,
     "STORE parameter records bytes [0xfff0, 0x10010)"),
]


@pytest.mark.parametrize("opcode, fields, code, detail", ERROR_CASES,
                         ids=lambda x: x.name if hasattr(x, "name") else None)
def test_errors_change_nothing(opcode, fields, code, detail, seed):
    sim = make_sim(np.random.default_rng(seed))
    before = snapshot(sim)
    word = isa.encode(opcode, **fields).to_bytes(32, "little")
    sim.write_mem(PROG, word + isa.encode_program([(END, {})]))
    assert sim.run(PROG) == error_status(code)
    assert sim.read_reg(Reg.FAULT_PC) == PROG
    assert detail in sim.fault.detail
    assert_state(sim, before)


@pytest.mark.parametrize("shift", [31, -32, 127])
def test_bad_shift_in_param_record(shift):
    sim = make_sim(np.random.default_rng(0))
    sim.memory[0x200:0x240] = 0
    sim.memory[0x200 + 16 * 2 + 8] = shift & 0xFF
    before = snapshot(sim)
    status = run(sim, [(STORE, dict(S1, mode=1, cols=4, param_addr=0x200)), (END, {})])
    assert status == error_status(MALFORMED)
    assert f"record 2 at 0x220 has shift {shift} outside [-31, 30]" in sim.fault.detail
    assert_state(sim, before)


def test_illegal_opcodes_and_reserved_bits():
    sim = make_sim(np.random.default_rng(0))
    sim.memory[PROG:PROG + 32] = 0
    assert sim.run(PROG) == error_status(ErrorCode.ILLEGAL_OPCODE)
    sim.write_mem(PROG, (7).to_bytes(32, "little"))
    assert sim.run(PROG) == error_status(ErrorCode.ILLEGAL_OPCODE)
    assert "opcode 7 is illegal" in sim.fault.detail
    sim.write_mem(PROG, (isa.encode(END) | 1 << 255).to_bytes(32, "little"))
    assert sim.run(PROG) == error_status(MALFORMED)
    assert sim.fault.detail == "END has reserved bits set"
    assert sim.counters["instructions"] == 0


def test_prog_base_alignment():
    sim = make_sim(np.random.default_rng(0))
    assert run(sim, [(END, {})], base=PROG + 4) == error_status(MALFORMED)
    assert sim.read_reg(Reg.FAULT_PC) == PROG + 4
    assert "PROG_BASE 0xe004 is not 32-byte aligned" in sim.fault.detail


def test_fetch_range_and_bus_error():
    sim = make_sim(np.random.default_rng(0))
    sim.write_reg(Reg.MEM_LIMIT, 0xF000)
    # The program runs into MEM_LIMIT without an END.
    assert run(sim, [(LOAD, L1)], base=0xEFE0) == error_status(DRAM)
    assert sim.read_reg(Reg.FAULT_PC) == 0xF000
    assert sim.read_reg(Reg.PC) == 0xF000
    assert "instruction fetch bytes [0xf000, 0xf020)" in sim.fault.detail
    sim.write_reg(Reg.MEM_LIMIT, 0)                   # 0 means 2**32: beyond the memory
    assert sim.read_reg(Reg.MEM_LIMIT) == 0
    assert run(sim, [(LOAD, dict(L1, dram_addr=0x10000)), (END, {})]) == \
        error_status(ErrorCode.BUS_ERROR)


def test_error_after_earlier_instructions_keeps_their_effects():
    sim = make_sim(np.random.default_rng(0))
    sim.memory[0:8] = np.arange(1, 9)
    before = snapshot(sim)
    status = run(sim, [(LOAD, dict(L1, row_bytes=4, push_next=1)),
                       (GEMM, dict(G1, pop_prev=1, acc_addr=40)), (END, {})])
    assert status == error_status(SPAD)
    assert sim.read_reg(Reg.FAULT_PC) == PROG + 32
    before["input"][0] = [1, 2, 3, 4]
    assert_state(sim, before)


def test_token_overflow():
    sim = make_sim(np.random.default_rng(0))
    program = [(LOAD, dict(L1, push_next=1))] * 255
    program += [(LOAD, dict(L1, target=1, push_next=1)), (END, {})]
    sim.memory[0] = 77
    sim.write_mem(0x8000, isa.encode_program(program))
    before = snapshot(sim)
    assert sim.run(0x8000) == error_status(ErrorCode.TOKEN_OVERFLOW)
    assert sim.read_reg(Reg.FAULT_PC) == 0x8000 + 255 * 32
    assert "load->compute queue already holds 255 tokens" in sim.fault.detail
    before["input"][0] = [77, 0, 0, 0]                # the 255 LOADs before it ran (padded)
    assert_state(sim, before)


@pytest.mark.parametrize("program, fault_index, waits", [
    ([(GEMM, dict(G1, pop_prev=1))], 0, "compute unit at 0x0000e000 waits for load->compute"),
    ([(STORE, dict(S1, pop_prev=1))], 0, "store unit at 0x0000e000 waits for compute->store"),
    ([(GEMM, dict(G1, pop_next=1))], 0, "waits for store->compute"),
    ([(LOAD, dict(L1, pop_next=1, push_next=1)), (GEMM, dict(G1, pop_prev=1, push_prev=1))],
     0, "load unit at 0x0000e000 waits for compute->load"),
    ([(LOAD, dict(L1, push_next=1)), (GEMM, dict(G1, pop_prev=1)),
      (GEMM, dict(G1, pop_prev=1, push_next=1)), (STORE, dict(S1, pop_prev=1))], 2,
     "compute unit at 0x0000e040 waits for load->compute"),
])
def test_deadlock(program, fault_index, waits):
    sim = make_sim(np.random.default_rng(0))
    assert run(sim, program + [(END, {})]) == error_status(ErrorCode.DEADLOCK)
    assert sim.read_reg(Reg.FAULT_PC) == PROG + 32 * fault_index
    assert waits in sim.fault.detail


# --- tokens, counters and the cycle model ------------------------------------------------------

def test_counters_exact():
    sim = make_sim(np.random.default_rng(0))
    sim.memory[0x400:0x400 + 16 * 5] = 0
    program = [(LOAD, dict(L1, rows=3, row_bytes=5, spad_stride=2, push_next=1)),
               (GEMM, dict(G1, m=2, k_tiles=2, n_tiles=3, w_stride=1, w_k_step=4, w_n_step=8,
                           pop_prev=1, push_next=1)),
               (STORE, dict(S1, mode=1, rows=2, cols=5, dram_stride=5, param_addr=0x400,
                            pop_prev=1)),
               (END, {})]
    assert run(sim, program) == DONE
    c = sim.counters
    assert c["bytes_read"] == 4 * 32 + 15 + 16 * 5
    assert c["bytes_written"] == 10
    assert c["instructions"] == 4
    assert c["compute_cycles"] == 12
    assert c["cycles"] >= sum(instruction_cost(CFG, op, {**isa.decode(isa.encode(op, **f))[1]})
                              .cycles for op, f in program)
    assert 0 <= c["dma_stall_cycles"] <= c["dma_busy_cycles"] <= c["cycles"]
    assert c == estimate_cycles(CFG, program)
    device = GoldenDevice(CFG)
    device.simulator = sim
    assert device.counters() == c
    assert sim.read_reg(Reg.CYCLES) == c["cycles"] and sim.read_reg(Reg.CYCLES + 4) == 0


def test_cycle_model_single_gemm():
    # Fetch starts at DMA_LATENCY, 4 cycles (32 bytes / 8) per instruction; the GEMM is
    # dispatched when its fetch ends and costs R + tiles * max(m, R) + R + C + 1.
    for m in (1, R, 50):
        cycles = estimate_cycles(CFG, [(GEMM, dict(G1, m=m, n_tiles=3)), (END, {})])["cycles"]
        assert cycles == DMA_LATENCY + 4 + R + 3 * max(m, R) + R + C + 1


def test_cycle_model_is_monotonic():
    def load_cycles(rows):
        return estimate_cycles(CFG, [(LOAD, dict(L1, rows=rows, row_bytes=32, spad_stride=8)),
                                     (END, {})])["cycles"]
    assert load_cycles(1) < load_cycles(2) < load_cycles(8)
    gemms = [estimate_cycles(CFG, [(GEMM, dict(G1, m=m, k_tiles=k)), (END, {})])["cycles"]
             for m, k in ((4, 1), (8, 1), (8, 2), (64, 2))]
    assert gemms == sorted(gemms) and len(set(gemms)) == len(gemms)


def test_tokens_serialise_and_their_absence_overlaps():
    load = dict(L1, rows=8, row_bytes=32, spad_stride=8)
    gemm = dict(G1, m=50, n_tiles=2)
    free = estimate_cycles(CFG, [(LOAD, load), (GEMM, gemm), (END, {})])["cycles"]
    chained = estimate_cycles(CFG, [(LOAD, dict(load, push_next=1)),
                                    (GEMM, dict(gemm, pop_prev=1)), (END, {})])["cycles"]
    costs = [instruction_cost(CFG, op, {**isa.decode(isa.encode(op, **f))[1]}).cycles
             for op, f in ((LOAD, load), (GEMM, gemm))]
    assert free < chained
    assert chained >= sum(costs)
    assert free <= DMA_LATENCY + 8 + max(costs)


# --- registers and the Device API ---------------------------------------------------------------

def test_identity_registers():
    sim = IsaSimulator(CFG)
    assert sim.read_reg(Reg.ID) == isa.ID_MAGIC
    assert sim.read_reg(Reg.VERSION) == isa.VERSION
    assert sim.read_reg(Reg.CONFIG0) == 4 | 8 << 8 | 8 << 16
    assert sim.read_reg(Reg.CONFIG1) == 6 | 6 << 8 | 5 << 16
    assert sim.read_reg(Reg.MEM_LIMIT) == 1 << 16
    assert GoldenDevice(CFG).identify() == CFG
    assert GoldenDevice(CFG).config == CFG


def test_register_access_rules():
    sim = IsaSimulator(CFG)
    sim.write_reg(Reg.ID, 5)                           # read-only: ignored
    assert sim.read_reg(Reg.ID) == isa.ID_MAGIC
    sim.write_reg(Reg.CTRL, Ctrl.IRQ_ENABLE.value)
    assert sim.read_reg(Reg.CTRL) == 0
    assert sim.read_reg(0x7C) == 0
    with pytest.raises(ValueError, match="register offset 0x2 is not a 4-byte aligned offset"):
        sim.read_reg(2)
    with pytest.raises(ValueError, match="register offset 0x80 is not"):
        sim.write_reg(0x80, 0)
    with pytest.raises(ValueError, match="register value must be a 32-bit unsigned integer"):
        sim.write_reg(Reg.PROG_BASE, 1 << 32)
    with pytest.raises(ValueError, match="device memory access"):
        sim.read_mem(0xFFFF, 2)
    with pytest.raises(TypeError, match="config must be an AcceleratorConfig"):
        IsaSimulator(None)


def test_irq_and_pc():
    sim = make_sim(np.random.default_rng(0))
    sim.write_mem(PROG, isa.encode_program([(END, {})]))
    sim.write_reg(Reg.PROG_BASE, PROG)
    sim.write_reg(Reg.CTRL, (Ctrl.START | Ctrl.IRQ_ENABLE).value)
    assert sim.read_reg(Reg.STATUS) == DONE
    assert sim.read_reg(Reg.PC) == PROG + 32
    assert sim.read_reg(Reg.IRQ) == 1 and sim.irq
    sim.write_reg(Reg.IRQ, 1)
    assert sim.read_reg(Reg.IRQ) == 0 and not sim.irq


class FakeDevice(Device):
    def __init__(self, regs):
        self.regs = regs

    def read_reg(self, reg):
        return self.regs.get(int(reg), 0)


@pytest.mark.parametrize("regs, message", [
    ({Reg.ID: 0x12345678}, "not an Octet accelerator: ID register reads 0x12345678, "
                           "expected 0x4f435438"),
    ({Reg.ID: isa.ID_MAGIC, Reg.VERSION: 2 << 16},
     "accelerator ISA version 2.0 is not supported by this host (version 1.1)"),
    ({Reg.ID: isa.ID_MAGIC, Reg.VERSION: isa.VERSION, Reg.CONFIG0: 0},
     "accelerator reports an invalid configuration"),
])
def test_identify_mismatch(regs, message):
    with pytest.raises(DeviceError) as info:
        FakeDevice({int(k): v for k, v in regs.items()}).identify()
    assert message in str(info.value)


def test_run_raises_accelerator_error():
    device = GoldenDevice(CFG)
    device.write_program(0x100, [(LOAD, L1), (GEMM, dict(G1, acc_addr=32)), (END, {})])
    with pytest.raises(AcceleratorError) as info:
        device.run(0x100)
    err = info.value
    assert err.code is SPAD
    assert err.fault_pc == 0x120
    assert str(err).startswith("accelerator error SPAD_RANGE at 0x00000120: GEMM ")
    assert "acc_addr=32" in str(err)
    assert "accumulator row 32 is outside its 32 rows" in str(err)


def test_run_timeout_and_busy():
    device = GoldenDevice(CFG, timed=True)
    program = [(GEMM, dict(G1, m=30, k_tiles=16)), (END, {})]
    device.write_program(0, program)
    with pytest.raises(DeviceTimeout, match="program at 0x00000000 still running after 100 "
                                            r"cycles \(timeout 100\)"):
        device.run(0, timeout_cycles=100)
    with pytest.raises(DeviceError, match="the accelerator is busy"):
        device.run(0)
    device.wait(1 << 20)
    result = device.run(0)
    assert result.cycles == estimate_cycles(CFG, program)["cycles"]
    assert result.waited_cycles >= result.cycles
    with pytest.raises(ValueError, match="program address 0x4 is not 32-byte aligned"):
        device.write_program(4, program)
