"""Random valid programs for differential testing of the RTL against the golden simulator.

A program is a sequence of phases; each phase loads operands (LOAD and IM2COL into random
scratchpad rows from random places in a data region), runs GEMMs on random scratchpad ranges
and stores random accumulator ranges (int32, or int8 through random requantization tables)
to an output region. Tokens follow VTA's discipline so phases overlap safely: a phase's loads
wait for the previous phase's compute, its first GEMM for the previous phase's stores.

Because the whole device memory is filled with random bytes first, every byte a program must
not touch acts as a guard: the test compares the complete memory image with the golden
simulator's.
"""

import numpy as np

from octet.isa import PARAM_RECORD_BYTES, Opcode, ParamSource, StoreMode, Target
from octet.sim.golden import quantize_multiplier

__all__ = ["random_program", "ProgramLayout", "scrub_program"]


class ProgramLayout:
    """Where a random program keeps its data in a device memory of ``mem_bytes``."""

    def __init__(self, mem_bytes):
        self.data = 0x1000                       # operands: read only
        self.data_bytes = min(mem_bytes // 4, 1 << 16)
        self.params = self.data + self.data_bytes
        self.params_bytes = 4096
        self.out = self.params + self.params_bytes
        self.out_bytes = min(mem_bytes // 4, 1 << 16)
        self.program = self.out + self.out_bytes


def _params_table(rng, channels):
    mult, shift = quantize_multiplier(rng.uniform(1e-4, 0.05, channels))
    table = np.zeros((channels, PARAM_RECORD_BYTES), dtype=np.uint8)
    table[:, 0:4] = mult.astype("<i4").view(np.uint8).reshape(channels, 4)
    table[:, 4:8] = rng.integers(-3000, 3000, channels).astype("<i4").view(
        np.uint8).reshape(channels, 4)
    table[:, 8] = shift.astype(np.int8).view(np.uint8)
    return table.tobytes()


def random_program(cfg, rng, phases=3):
    """Return ``(instructions, param_bytes, layout)`` for a random valid program."""
    R, C = cfg.rows, cfg.cols
    lay = ProgramLayout(cfg.mem_bytes)
    params = _params_table(rng, lay.params_bytes // PARAM_RECORD_BYTES)
    prog = []
    kept = []
    r = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731

    for phase in range(phases):
        loads = []
        for _ in range(r(1, 3)):
            target = Target.INPUT if rng.random() < 0.5 else Target.WEIGHT
            width = R if target is Target.INPUT else C
            depth = cfg.input_rows if target is Target.INPUT else cfg.weight_rows
            rows, row_bytes = r(1, 6), r(1, 3 * width + 1)
            per = -(-row_bytes // width)
            stride = per + r(0, 2)
            spad = r(0, depth - (rows - 1) * stride - per)
            dstride = row_bytes + r(0, 9)
            dram = lay.data + r(0, lay.data_bytes - (rows - 1) * dstride - row_bytes)
            loads.append((Opcode.LOAD, dict(target=target, spad_addr=spad, spad_stride=stride,
                                            rows=rows, row_bytes=row_bytes, dram_addr=dram,
                                            dram_stride=dstride)))
        if rng.random() < 0.5:
            h, w, ch = r(1, 5), r(1, 5), r(1, 2 * R + 1)
            kh, kw, stride, pad = r(1, 3), r(1, 3), r(1, 2), r(0, 1)
            out_w = max(1, (w + 2 * pad - kw) // stride + 1)
            count = r(1, 4)
            rows = count * kh * kw * -(-ch // R)
            if rows <= cfg.input_rows:
                loads.append((Opcode.IM2COL, dict(
                    spad_addr=r(0, cfg.input_rows - rows), count=count,
                    x_addr=lay.data + r(0, lay.data_bytes - h * w * ch), height=h, width=w,
                    channels=ch, kernel_h=kh, kernel_w=kw, stride=stride, pad=pad,
                    out_w=out_w, oy0=r(0, 2), ox0=r(0, out_w - 1))))
        if phase:
            loads[0][1]["pop_next"] = 1
        loads[-1][1]["push_next"] = 1
        prog += loads

        gemms = []
        for _ in range(r(1, 3)):
            m, kt, nt = r(1, 6), r(1, 3), r(1, 3)
            a_stride, a_k = r(1, 3), r(0, 2)
            w_stride, w_k, w_n = r(1, 2), r(0, 3), r(0, 3)
            acc_n = r(m, m + 2)
            max_a = (kt - 1) * a_k + (m - 1) * a_stride
            max_w = (kt - 1) * w_k + (nt - 1) * w_n + (R - 1) * w_stride
            max_acc = (nt - 1) * acc_n + m - 1
            if max(max_a, 0) >= cfg.input_rows or max_w >= cfg.weight_rows or \
                    max_acc >= cfg.acc_rows:
                continue
            gemms.append((Opcode.GEMM, dict(
                accumulate=r(0, 1), m=m, acc_addr=r(0, cfg.acc_rows - 1 - max_acc),
                a_addr=r(0, cfg.input_rows - 1 - max_a), a_stride=a_stride,
                w_addr=r(0, cfg.weight_rows - 1 - max_w), w_stride=w_stride, k_tiles=kt,
                a_k_step=a_k, w_k_step=w_k, n_tiles=nt, w_n_step=w_n, acc_n_step=acc_n)))
        if not gemms:
            gemms.append((Opcode.GEMM, dict(m=1, k_tiles=1, n_tiles=1, w_stride=1)))
        gemms[0][1]["pop_prev"] = 1
        if phase:
            gemms[0][1]["pop_next"] = 1
        gemms[-1][1]["push_next"] = 1
        gemms[-1][1]["push_prev"] = 1
        prog += gemms

        stores = []
        for _ in range(r(1, 2)):
            mode = StoreMode.INT8 if rng.random() < 0.5 else StoreMode.INT32
            esize = 1 if mode is StoreMode.INT8 else 4
            rows, cols = r(1, 5), r(1, 3 * C)
            tiles = -(-cols // C)
            acc_n = r(rows, rows + 2)
            if (tiles - 1) * acc_n + rows > cfg.acc_rows:
                continue
            # Half the STOREs have rows back to back (one write run when cols <= C).
            stride = cols * esize + (r(0, 7) if rng.random() < 0.5 else 0)
            dram = lay.out + r(0, lay.out_bytes - (rows - 1) * stride - cols * esize)
            fields = dict(mode=mode, acc_addr=r(0, cfg.acc_rows - (tiles - 1) * acc_n - rows),
                          acc_n_step=acc_n, rows=rows, cols=cols, dram_addr=dram,
                          dram_stride=stride, zero_point=r(-20, 20), relu=r(0, 1))
            if mode is StoreMode.INT8:
                n_rec = lay.params_bytes // PARAM_RECORD_BYTES
                fields["param_addr"] = lay.params + PARAM_RECORD_BYTES * r(0, n_rec - cols)
                # Parameter slots: keep a table on chip, or use part of one kept earlier in
                # this program (slots kept by another program are not known here).
                how = rng.random()
                if how < 0.3 and cols <= cfg.param_slots:
                    slot = r(0, cfg.param_slots - cols)
                    fields.update(param_src=ParamSource.KEEP, param_slot=slot)
                    kept.append((slot, cols))
                elif how < 0.6 and kept:
                    slot, n = kept[r(0, len(kept) - 1)]
                    if cols <= n:
                        fields.update(param_src=ParamSource.SLOTS,
                                      param_slot=slot + r(0, n - cols))
            stores.append((Opcode.STORE, fields))
        if not stores:
            stores.append((Opcode.STORE, dict(rows=1, cols=1, dram_addr=lay.out)))
        stores[0][1]["pop_prev"] = 1
        stores[-1][1]["push_prev"] = 1
        prog += stores
    prog.append((Opcode.END, {}))
    return prog, params, lay


def scrub_program(cfg, zero_addr):
    """A program that zeroes both scratchpads and the accumulator.

    Reads the same all-zero row (``max(R, C)`` zero bytes at ``zero_addr``) into every
    scratchpad row, then overwrites every accumulator row with a GEMM of zero inputs. Gives
    the RTL and a golden device the same state before a differential test.
    """
    R, C = cfg.rows, cfg.cols
    prog = [
        (Opcode.LOAD, dict(target=Target.INPUT, spad_addr=0, spad_stride=1,
                           rows=cfg.input_rows, row_bytes=R, dram_addr=zero_addr,
                           dram_stride=0)),
        (Opcode.LOAD, dict(target=Target.WEIGHT, spad_addr=0, spad_stride=1,
                           rows=cfg.weight_rows, row_bytes=C, dram_addr=zero_addr,
                           dram_stride=0, push_next=1)),
    ]
    step = min(cfg.acc_rows, 1 << 15)
    for i, base in enumerate(range(0, cfg.acc_rows, step)):
        prog.append((Opcode.GEMM, dict(pop_prev=int(i == 0), m=step, acc_addr=base,
                                       a_stride=0, w_stride=1, k_tiles=1, n_tiles=1)))
    prog.append((Opcode.END, {}))
    return prog
