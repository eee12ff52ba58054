"""The data state of the functional simulator and the semantics of its four data instructions.

:class:`Datapath` holds device memory, the input and weight scratchpads and the accumulator,
and executes LOAD, IM2COL, GEMM and STORE exactly as ``docs/isa.md`` specifies. Every
instruction first checks all of its rules (MALFORMED fields, then scratchpad ranges, then
device-memory ranges, then the contents of requantization records) and only then writes, so a
faulting instruction changes nothing. Arithmetic goes through :mod:`octet.sim.golden`.
Tested by ``tests/test_isa_sim.py`` against direct NumPy.
"""

import numpy as np

from octet.isa import PARAM_RECORD_BYTES, ErrorCode, Opcode, ParamSource, StoreMode, Target
from octet.numerics import SHIFT_MAX, SHIFT_MIN, RequantParams

from . import golden
from .isa_kv import KvRegisters, expand, words_read
from .isa_sched import DMA_LATENCY, Cost, Fault, instruction_cost

__all__ = ["Datapath", "MAX_N_TILES"]

#: Largest n-tile count a GEMM can name (its 12-bit ``n_tiles`` field); STORE is held to it.
MAX_N_TILES = (1 << 12) - 1
#: Largest number of int8 operands a GEMM gathers at once.
_GATHER_LIMIT = 1 << 22


def _ceil(a, b):
    return -(-a // b)


class Datapath:
    """Device memory, scratchpads and accumulator of one accelerator, and what changes them.

    Parameters
    ----------
    config : AcceleratorConfig
        Array size, memory depths and the size of device memory.

    Attributes
    ----------
    memory : numpy.ndarray of uint8, shape (mem_bytes,)
    input_spad : numpy.ndarray of int8, shape (input_rows, R)
    weight_spad : numpy.ndarray of int8, shape (weight_rows, C)
    acc : numpy.ndarray of int32, shape (acc_rows, C)
    mem_limit : int
        DMA may touch ``[0, mem_limit)`` (the MEM_LIMIT register, 0 meaning 2**32).
    slot_multiplier, slot_bias, slot_shift : numpy.ndarray of int32, shape (param_slots,)
        The parameter slots (records kept on chip by ``param_src`` KEEP); they persist
        across programs and start as zeros.
    """

    def __init__(self, config):
        self.config = config
        self.memory = np.zeros(config.mem_bytes, dtype=np.uint8)
        self.input_spad = np.zeros((config.input_rows, config.rows), dtype=np.int8)
        self.weight_spad = np.zeros((config.weight_rows, config.cols), dtype=np.int8)
        self.acc = np.zeros((config.acc_rows, config.cols), dtype=np.int32)
        self.mem_limit = config.mem_bytes
        self.kv = KvRegisters()
        self.slot_multiplier = np.zeros(config.param_slots, dtype=np.int32)
        self.slot_bias = np.zeros(config.param_slots, dtype=np.int32)
        self.slot_shift = np.zeros(config.param_slots, dtype=np.int32)

    def check_dram(self, pc, lo, hi, what):
        """Raise DRAM_RANGE (or BUS_ERROR beyond the memory) unless ``[lo, hi)`` is legal."""
        if hi > self.mem_limit:
            raise Fault(ErrorCode.DRAM_RANGE, pc,
                        f"{what} bytes [0x{lo:x}, 0x{hi:x}) leave [0, MEM_LIMIT = "
                        f"0x{self.mem_limit:x})")
        if hi > len(self.memory):
            raise Fault(ErrorCode.BUS_ERROR, pc,
                        f"{what} bytes [0x{lo:x}, 0x{hi:x}) leave the {len(self.memory)}-byte "
                        "device memory")

    def execute(self, entry):
        """Check, then perform, one dispatched instruction (an :class:`~.isa_sched.Entry`).

        Returns the :class:`~.isa_sched.Cost` of a KV instruction (which depends on its block
        table), None for the others.
        """
        if entry.opcode in (Opcode.KV_LOAD, Opcode.KV_APPEND):
            return self._kv(entry.opcode, entry.pc, entry.fields)
        {Opcode.LOAD: self._load, Opcode.IM2COL: self._im2col, Opcode.GEMM: self._gemm,
         Opcode.STORE: self._store}[entry.opcode](entry.pc, entry.fields)
        return None

    def _kv(self, op, pc, f):
        """KV_LOAD / KV_APPEND: the controller's checks, then its LOADs or STOREs in order.

        A sub-transfer that faults stops the instruction there (earlier ones have happened),
        as in the hardware.
        """
        subs, pages = expand(self.config, op, f, self.kv, self.memory, self.check_dram, pc)
        words = words_read(pages)
        cost = Cost(3 * DMA_LATENCY + pages, bytes_read=words * self.config.bus_bytes,
                    beats=words, dma=True)
        for sub_op, sub in subs:
            (self._load if sub_op is Opcode.LOAD else self._store)(pc, sub)
            c = instruction_cost(self.config, sub_op, sub)
            cost.cycles += max(0, c.cycles - DMA_LATENCY)
            cost.bytes_read += c.bytes_read
            cost.bytes_written += c.bytes_written
            cost.beats += c.beats
        return cost

    @staticmethod
    def _nonzero(pc, op, f, names):
        for name in names:
            if f[name] == 0:
                raise Fault(ErrorCode.MALFORMED, pc, f"{op} {name} is 0")

    def _spad_range(self, pc, what, last, depth):
        if last >= depth:
            raise Fault(ErrorCode.SPAD_RANGE, pc,
                        f"{what} row {last} is outside its {depth} rows")

    def _load(self, pc, f):
        if f["target"] not in (Target.INPUT.value, Target.WEIGHT.value):
            raise Fault(ErrorCode.MALFORMED, pc, f"LOAD target {f['target']} is not assigned")
        self._nonzero(pc, "LOAD", f, ("rows", "row_bytes"))
        weight = f["target"] == Target.WEIGHT.value
        spad = self.weight_spad if weight else self.input_spad
        width = spad.shape[1]
        rows, row_bytes, stride = f["rows"], f["row_bytes"], f["spad_stride"]
        per = _ceil(row_bytes, width)
        if rows > 1 and stride < per:
            raise Fault(ErrorCode.MALFORMED, pc,
                        f"LOAD spad_stride {stride} < {per} scratchpad rows per DRAM row")
        name = "weight scratchpad" if weight else "input scratchpad"
        self._spad_range(pc, name, f["spad_addr"] + (rows - 1) * stride + per - 1, len(spad))
        self.check_dram(pc, f["dram_addr"], f["dram_addr"] + (rows - 1) * f["dram_stride"]
                        + row_bytes, "LOAD source")
        i = np.arange(rows, dtype=np.int64)[:, None]
        buf = np.zeros((rows, per * width), dtype=np.uint8)
        buf[:, :row_bytes] = self.memory[f["dram_addr"] + i * f["dram_stride"]
                                         + np.arange(row_bytes)]
        dst = f["spad_addr"] + i * stride + np.arange(per)
        spad[dst.ravel()] = buf.reshape(-1, width).view(np.int8)

    def _im2col(self, pc, f):
        self._nonzero(pc, "IM2COL", f, ("count", "height", "width", "channels", "kernel_h",
                                        "kernel_w", "stride", "out_w"))
        if f["ox0"] >= f["out_w"]:
            raise Fault(ErrorCode.MALFORMED, pc,
                        f"IM2COL ox0 {f['ox0']} is not below out_w {f['out_w']}")
        R = self.config.rows
        kh, kw, ch, count = f["kernel_h"], f["kernel_w"], f["channels"], f["count"]
        cc = _ceil(ch, R)
        per = kh * kw * cc
        self._spad_range(pc, "input scratchpad", f["spad_addr"] + count * per - 1,
                         len(self.input_spad))
        # The whole input image must lie in device memory, whether or not every pixel is read.
        self.check_dram(pc, f["x_addr"], f["x_addr"] + f["height"] * f["width"] * ch,
                        "IM2COL source image")
        lin = f["oy0"] * f["out_w"] + f["ox0"] + np.arange(count, dtype=np.int64)
        oy, ox = lin // f["out_w"], lin % f["out_w"]
        iy = oy[:, None] * f["stride"] + np.arange(kh) - f["pad"]          # (count, KH)
        ix = ox[:, None] * f["stride"] + np.arange(kw) - f["pad"]          # (count, KW)
        valid = (((iy >= 0) & (iy < f["height"]))[:, :, None]
                 & ((ix >= 0) & (ix < f["width"]))[:, None, :])
        pixel = f["x_addr"] + (iy[:, :, None] * f["width"] + ix[:, None, :]) * ch
        buf = np.zeros((count, kh, kw, cc * R), dtype=np.uint8)
        buf[valid, :ch] = self.memory[pixel[valid][:, None] + np.arange(ch)]
        start = f["spad_addr"]
        self.input_spad[start:start + count * per] = buf.reshape(-1, R).view(np.int8)

    def _gemm(self, pc, f):
        self._nonzero(pc, "GEMM", f, ("m", "k_tiles", "n_tiles"))
        R, C = self.config.rows, self.config.cols
        m, kt, nt = f["m"], f["k_tiles"], f["n_tiles"]
        self._spad_range(pc, "input scratchpad",
                         f["a_addr"] + (kt - 1) * f["a_k_step"] + (m - 1) * f["a_stride"],
                         len(self.input_spad))
        self._spad_range(pc, "weight scratchpad",
                         f["w_addr"] + (kt - 1) * f["w_k_step"] + (nt - 1) * f["w_n_step"]
                         + (R - 1) * f["w_stride"], len(self.weight_spad))
        self._spad_range(pc, "accumulator", f["acc_addr"] + (nt - 1) * f["acc_n_step"] + m - 1,
                         len(self.acc))
        i = np.arange(m, dtype=np.int64)
        r = np.arange(R, dtype=np.int64)
        # k-tiles in chunks, so that broadcast strides (0) cannot blow up the gathered operands
        chunk = max(1, _GATHER_LIMIT // (m * R))
        for n in range(nt):
            rows = f["acc_addr"] + n * f["acc_n_step"] + i
            partial = self.acc[rows].astype(np.int64) if f["accumulate"] else 0
            for k0 in range(0, kt, chunk):
                k = np.arange(k0, min(kt, k0 + chunk), dtype=np.int64)
                a = self.input_spad[f["a_addr"] + k[None, :] * f["a_k_step"]
                                    + i[:, None] * f["a_stride"]].reshape(m, -1)
                w = self.weight_spad[f["w_addr"] + k[:, None] * f["w_k_step"]
                                     + n * f["w_n_step"] + r[None, :] * f["w_stride"]]
                partial = golden.wrap_int32(partial + golden.matmul_int32(a, w.reshape(-1, C)))
            self.acc[rows] = partial

    def _store(self, pc, f):
        if f["mode"] not in (StoreMode.INT32.value, StoreMode.INT8.value):
            raise Fault(ErrorCode.MALFORMED, pc, f"STORE mode {f['mode']} is not assigned")
        self._nonzero(pc, "STORE", f, ("rows", "cols"))
        C = self.config.cols
        rows, cols = f["rows"], f["cols"]
        int8 = f["mode"] == StoreMode.INT8.value
        n_tiles = _ceil(cols, C)
        limit = min(len(self.acc), MAX_N_TILES)
        if n_tiles > limit:
            raise Fault(ErrorCode.MALFORMED, pc,
                        f"STORE cols {cols} need {n_tiles} n-tiles, more than {limit}")
        value_bytes = 1 if int8 else 4
        src = f.get("param_src", 0)
        if src > ParamSource.SLOTS.value:
            raise Fault(ErrorCode.MALFORMED, pc, f"STORE param_src {src} is not assigned")
        slots = int8 and src != ParamSource.MEMORY.value
        from_memory = int8 and src != ParamSource.SLOTS.value
        if from_memory and f["param_addr"] % PARAM_RECORD_BYTES:
            raise Fault(ErrorCode.MALFORMED, pc,
                        f"STORE param_addr 0x{f['param_addr']:x} is not "
                        f"{PARAM_RECORD_BYTES}-byte aligned")
        if rows > 1 and f["dram_stride"] < cols * value_bytes:
            raise Fault(ErrorCode.MALFORMED, pc,
                        f"STORE dram_stride {f['dram_stride']} < {cols * value_bytes} bytes "
                        "per row: rows would overlap")
        self._spad_range(pc, "accumulator",
                         f["acc_addr"] + (n_tiles - 1) * f["acc_n_step"] + rows - 1,
                         len(self.acc))
        if slots:
            self._spad_range(pc, "parameter slot", f.get("param_slot", 0) + cols - 1,
                             self.config.param_slots)
        self.check_dram(pc, f["dram_addr"], f["dram_addr"] + (rows - 1) * f["dram_stride"]
                        + cols * value_bytes, "STORE destination")
        j = np.arange(cols, dtype=np.int64)
        i = np.arange(rows, dtype=np.int64)[:, None]
        values = self.acc[f["acc_addr"] + (j // C)[None, :] * f["acc_n_step"] + i, j % C]
        if int8:
            params = self._read_params(pc, f) if from_memory else self._slot_params(f)
            if src == ParamSource.KEEP.value:
                kept = slice(f["param_slot"], f["param_slot"] + cols)
                self.slot_multiplier[kept] = params.multiplier
                self.slot_bias[kept] = params.bias
                self.slot_shift[kept] = params.shift
            out = golden.requantize(values, params).view(np.uint8)
        else:
            out = values.astype("<i4").view(np.uint8).reshape(rows, cols * 4)
        self.memory[f["dram_addr"] + i * f["dram_stride"] + np.arange(cols * value_bytes)] = out

    def _slot_params(self, f):
        kept = slice(f["param_slot"], f["param_slot"] + f["cols"])
        return RequantParams(multiplier=self.slot_multiplier[kept].copy(),
                             shift=self.slot_shift[kept].copy(),
                             bias=self.slot_bias[kept].copy(),
                             zero_point=f["zero_point"], relu=bool(f["relu"]))

    def _read_params(self, pc, f):
        cols, base = f["cols"], f["param_addr"]
        self.check_dram(pc, base, base + PARAM_RECORD_BYTES * cols, "STORE parameter records")
        rec = self.memory[base:base + PARAM_RECORD_BYTES * cols].reshape(cols, -1)
        shift = rec[:, 8].view(np.int8).astype(np.int32)
        bad = (shift < SHIFT_MIN) | (shift > SHIFT_MAX)
        if bad.any():
            c = int(np.argmax(bad))
            raise Fault(ErrorCode.MALFORMED, pc,
                        f"STORE parameter record {c} at 0x{base + 16 * c:x} has shift "
                        f"{int(shift[c])} outside [{SHIFT_MIN}, {SHIFT_MAX}]")
        return RequantParams(multiplier=rec[:, 0:4].copy().view("<i4").ravel().astype(np.int32),
                             shift=shift,
                             bias=rec[:, 4:8].copy().view("<i4").ravel().astype(np.int32),
                             zero_point=f["zero_point"], relu=bool(f["relu"]))
