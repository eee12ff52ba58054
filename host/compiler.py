"""Compile int8 GEMMs and NHWC convolutions into Octet programs and run them on a device.

Memory layouts (device memory, every region 32-byte aligned):

* GEMM: ``A`` int8 (M, K) row-major, ``B`` int8 (K, N) row-major (LOAD's strided rows and
  zero padding already give the scratchpad layout, so weights need no packing), output
  row-major (M, N), int32 little-endian or int8 with ``requant``.
* conv2d: ``X`` int8 NHWC, weights packed by :func:`pack_conv_weights` into a
  (KH*KW*CC*R, Cout) row-major matrix whose rows follow IM2COL's (ky, kx, cc, r) scratchpad
  order with input channels zero-padded to CC*R, output NHWC (int32 or int8).
* requantization: one 16-byte record per output channel (:func:`pack_requant`).

Scratchpad layouts: activation row ``i`` of a block occupies consecutive input-scratchpad
rows ``slot + i * ka + kt`` (ka k-tiles); weight row ``k`` of a block occupies weight rows
``slot + k * nb + nt``; output row ``i`` of n-tile ``nt`` is accumulator row
``slot + nt * mb + i``. Blocking and double buffering are :mod:`octet.host.schedule`'s.

Convolutions the IM2COL instruction cannot express (fields too narrow, or one pixel's patch
larger than the input scratchpad) fall back to an im2col on the host followed by the GEMM
path; :attr:`RunStats.fallback` says why. Tested by ``tests/test_compiler.py`` against NumPy.
"""

from dataclasses import dataclass

import numpy as np

from octet import isa
from octet.isa import PARAM_RECORD_BYTES, Opcode, StoreMode, Target
from octet.numerics import MAX_EXACT_K, RequantParams
from octet.sim.isa_sched import encode_fast, estimate_cycles

from .memory_plan import MemoryPlan
from .schedule import Blocking, ScheduleError, build_schedule, choose_blocking, plan_buffers
from .tiling import OperandError, check_gemm_operands

__all__ = ["CompileError", "CompiledProgram", "RunStats", "compile_gemm", "compile_conv2d",
           "conv_output_shape", "im2col_limits", "pack_conv_weights", "pack_requant",
           "host_im2col", "run_gemm", "run_conv2d"]


class CompileError(ValueError):
    """An operation the compiler cannot turn into a program; the message says why."""


@dataclass(frozen=True)
class CompiledProgram:
    """A program and the blocking it was built with."""

    instructions: list   # (Opcode, fields) pairs, END last
    blocking: Blocking

    def to_bytes(self):
        return b"".join(encode_fast(op, f).to_bytes(isa.INSTRUCTION_BYTES, "little")
                        for op, f in self.instructions)

    def estimate(self, config):
        """Counters the ISA cycle model predicts for this program."""
        return estimate_cycles(config, self.instructions)

    def fields_of(self, opcode):
        """Fields of every instruction with ``opcode``, in program order."""
        return [f for op, f in self.instructions if op is opcode]


@dataclass(frozen=True)
class RunStats:
    """What a run cost: the device's counters and the ideal cycles of the array."""

    counters: dict
    ideal_cycles: float          # multiply-accumulates / (R * C)
    program: CompiledProgram
    regions: dict                # name -> (address, bytes) in device memory
    fallback: str | None = None  # why a convolution ran as host im2col + GEMM

    @property
    def cycles(self):
        return self.counters["cycles"]

    @property
    def utilization(self):
        return self.ideal_cycles / max(1, self.cycles)


def _ceil(a, b):
    return -(-a // b)


def _count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")


def _requant_fields(requant, param_addr, n):
    if requant is None:
        return None
    if not isinstance(requant, RequantParams):
        raise TypeError(f"requant must be RequantParams or None, not {requant!r}")
    requant.validate(channels=n)
    if param_addr is None:
        raise ValueError("requant needs param_addr, the address of the parameter records")
    return dict(mode=StoreMode.INT8, zero_point=requant.zero_point, relu=int(requant.relu))


def _gemm_program(config, m, kt, n, load_a, load_w, c_addr, requant, param_addr, blocking,
                  full_k=None):
    C = config.cols
    nt = _ceil(n, C)
    rq = _requant_fields(requant, param_addr, n)
    vb = 4 if rq is None else 1

    def store(m0, rows, nt0, ntiles, acc):
        n0 = nt0 * C
        fields = dict(mode=StoreMode.INT32, acc_addr=acc, acc_n_step=rows, rows=rows,
                      cols=min(ntiles * C, n - n0), dram_addr=c_addr + (m0 * n + n0) * vb,
                      dram_stride=n * vb)
        if rq is not None:
            fields.update(rq, param_addr=param_addr + PARAM_RECORD_BYTES * n0)
        return Opcode.STORE, fields

    def make(b):
        return build_schedule(config, m, kt, nt, b, load_a, load_w, store)

    if blocking is None:
        blocking, program = choose_blocking(config, m, kt, nt, make, full_k=full_k)
    else:
        if full_k is not None and blocking.a_full_k != full_k:
            raise ScheduleError(f"this operation needs a_full_k={full_k}")
        plan_buffers(config, m, kt, nt, blocking)
        program = make(blocking)
    return CompiledProgram(program, blocking)


def _weight_loader(config, k_rows, n, b_addr):
    R, C = config.rows, config.cols

    def load_w(kt0, ktiles, nt0, ntiles, spad):
        k0, n0 = kt0 * R, nt0 * C
        return [(Opcode.LOAD, dict(target=Target.WEIGHT, spad_addr=spad, spad_stride=ntiles,
                                   rows=min(ktiles * R, k_rows - k0),
                                   row_bytes=min(ntiles * C, n - n0),
                                   dram_addr=b_addr + k0 * n + n0, dram_stride=n))]
    return load_w


def compile_gemm(config, m, k, n, *, a_addr, b_addr, c_addr, requant=None, param_addr=None,
                 blocking=None):
    """Program computing C = A @ B (requantized to int8 when ``requant`` is given).

    Parameters
    ----------
    config : AcceleratorConfig
    m, k, n : int
        A is (m, k), B is (k, n), both int8 row-major at ``a_addr`` / ``b_addr``.
    a_addr, b_addr, c_addr : int
        Device addresses of A, B and the row-major (m, n) output.
    requant : RequantParams, optional
        Output int8 through these parameters, whose records are at ``param_addr``.
    blocking : Blocking, optional
        Force a blocking instead of choosing the fastest by the cycle model.
    """
    for name, v in (("m", m), ("k", k), ("n", n)):
        _count(name, v)
    for name, v in (("a_addr", a_addr), ("b_addr", b_addr), ("c_addr", c_addr)):
        _count(name, v, 0)
    R = config.rows

    def load_a(m0, rows, kt0, ktiles, spad):
        k0 = kt0 * R
        return [(Opcode.LOAD, dict(target=Target.INPUT, spad_addr=spad, spad_stride=ktiles,
                                   rows=rows, row_bytes=min(ktiles * R, k - k0),
                                   dram_addr=a_addr + m0 * k + k0, dram_stride=k))]

    return _gemm_program(config, m, _ceil(k, R), n, load_a,
                         _weight_loader(config, k, n, b_addr), c_addr, requant, param_addr,
                         blocking)


def conv_output_shape(x_shape, w_shape, stride, padding):
    """``(N, OH, OW, Cout)`` of an NHWC convolution with HWIO weights."""
    n, h, w, _ = x_shape
    kh, kw, _, cout = w_shape
    return n, (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1, cout


def im2col_limits(config, x_shape, w_shape, stride, padding):
    """Why IM2COL cannot run this convolution, or None if it can."""
    _, h, w, cin = x_shape
    kh, kw, _, _ = w_shape
    _, oh, ow, _ = conv_output_shape(x_shape, w_shape, stride, padding)
    limits = [("height", h, 4095), ("width", w, 4095), ("channels", cin, 4095),
              ("kernel_h", kh, 15), ("kernel_w", kw, 15), ("stride", stride, 15),
              ("pad", padding, 15), ("out_w", ow, 4095), ("output height", oh, 4096)]
    for name, value, top in limits:
        if value > top:
            return f"IM2COL {name} {value} exceeds {top}"
    patch = kh * kw * _ceil(cin, config.rows)
    if patch > config.input_rows:
        return (f"one pixel's patch needs {patch} input-scratchpad rows but there are "
                f"{config.input_rows}")
    return None


def compile_conv2d(config, x_shape, w_shape, *, stride=1, padding=0, x_addr, w_addr, y_addr,
                   requant=None, param_addr=None, blocking=None):
    """Program of an NHWC convolution through IM2COL.

    ``x_shape`` is (N, H, W, Cin) at ``x_addr``; ``w_shape`` is (KH, KW, Cin, Cout), packed
    at ``w_addr`` by :func:`pack_conv_weights`; the (N, OH, OW, Cout) output goes to
    ``y_addr``. Raises :class:`CompileError` if IM2COL cannot express the convolution.
    """
    _count("stride", stride)
    _count("padding", padding, 0)
    n_img, h, w, cin = x_shape
    kh, kw, _, cout = w_shape
    _, oh, ow, _ = conv_output_shape(x_shape, w_shape, stride, padding)
    reason = im2col_limits(config, x_shape, w_shape, stride, padding)
    if reason:
        raise CompileError(reason)
    R = config.rows
    kt = kh * kw * _ceil(cin, R)
    pixels = oh * ow

    def load_a(m0, rows, kt0, ktiles, spad):
        out, p = [], m0
        while p < m0 + rows:
            img, lin = divmod(p, pixels)
            count = min(m0 + rows - p, pixels - lin)
            out.append((Opcode.IM2COL, dict(
                spad_addr=spad + (p - m0) * kt, count=count, x_addr=x_addr + img * h * w * cin,
                height=h, width=w, channels=cin, kernel_h=kh, kernel_w=kw, stride=stride,
                pad=padding, out_w=ow, oy0=lin // ow, ox0=lin % ow)))
            p += count
        return out

    try:
        return _gemm_program(config, n_img * pixels, kt, cout, load_a,
                             _weight_loader(config, kt * R, cout, w_addr), y_addr, requant,
                             param_addr, blocking, full_k=True)
    except ScheduleError as exc:
        raise CompileError(str(exc)) from None


def pack_conv_weights(w, rows):
    """HWIO int8 weights -> the (KH*KW*CC*R, Cout) matrix IM2COL's row order needs."""
    kh, kw, cin, cout = w.shape
    cp = _ceil(cin, rows) * rows
    packed = np.zeros((kh, kw, cp, cout), dtype=np.int8)
    packed[:, :, :cin, :] = w
    return packed.reshape(kh * kw * cp, cout)


def pack_requant(params):
    """The 16-byte-per-channel records of ``params`` (multiplier, bias, shift)."""
    n = params.channels
    rec = np.zeros((n, PARAM_RECORD_BYTES), dtype=np.uint8)
    rec[:, 0:4] = params.multiplier.astype("<i4").view(np.uint8).reshape(n, 4)
    rec[:, 4:8] = params.bias.astype("<i4").view(np.uint8).reshape(n, 4)
    rec[:, 8] = params.shift.astype(np.int8).view(np.uint8)
    return rec.tobytes()


def _run(device, plan, program, out_region, out_shape, out_dtype, ideal, timeout_cycles,
         fallback=None):
    blob = program.to_bytes()
    prog_addr = plan.alloc(len(blob), "program")
    device.write_mem(prog_addr, blob)
    result = device.run(prog_addr, timeout_cycles=timeout_cycles)
    addr, nbytes = plan.regions[out_region]
    out = np.frombuffer(device.read_mem(addr, nbytes), dtype=out_dtype).astype(
        np.int32 if out_dtype == "<i4" else np.int8).reshape(out_shape)
    return out, RunStats(result.counters, ideal, program, dict(plan.regions), fallback)


def _operands_to_device(device, plan, requant, n, arrays):
    addrs = {}
    for name, array in arrays:
        addrs[name] = plan.alloc(array.nbytes, name)
        device.write_mem(addrs[name], np.ascontiguousarray(array).tobytes())
    if requant is not None:
        requant.validate(channels=n)
        addrs["params"] = plan.alloc(PARAM_RECORD_BYTES * n, "params")
        device.write_mem(addrs["params"], pack_requant(requant))
    return addrs


def run_gemm(device, a, b, requant=None, *, blocking=None, timeout_cycles=None):
    """A int8 (M, K) @ B int8 (K, N) on ``device``: ``(out, RunStats)``.

    ``out`` is int32 (M, N), or int8 through ``requant``; bit-exact with
    :func:`octet.sim.golden.matmul_int32` / :func:`octet.sim.golden.requantize`.
    """
    check_gemm_operands(a, b)
    config = device.config
    m, k = a.shape
    n = b.shape[1]
    plan = MemoryPlan(config.mem_bytes)
    addrs = _operands_to_device(device, plan, requant, n, [("A", a), ("B", b)])
    vb = 4 if requant is None else 1
    c_addr = plan.alloc(m * n * vb, "C")
    program = compile_gemm(config, m, k, n, a_addr=addrs["A"], b_addr=addrs["B"], c_addr=c_addr,
                           requant=requant, param_addr=addrs.get("params"), blocking=blocking)
    return _run(device, plan, program, "C", (m, n), "<i4" if vb == 4 else np.int8,
                m * k * n / (config.rows * config.cols), timeout_cycles)


def _check_conv_operands(x, w, stride, padding):
    for name, t, ndims in (("x", x, (3, 4)), ("w", w, (4,))):
        if not isinstance(t, np.ndarray) or t.dtype != np.int8 or t.ndim not in ndims:
            raise OperandError(f"{name} must be an int8 NumPy array with "
                               f"{' or '.join(map(str, ndims))} dimensions, not {t!r:.60}")
        if 0 in t.shape:
            raise OperandError(f"{name} must not be empty, but has shape {t.shape}")
    _count("stride", stride)
    _count("padding", padding, 0)
    if x.shape[-1] != w.shape[2]:
        raise OperandError(f"x has {x.shape[-1]} channels but w expects {w.shape[2]}")
    if w.shape[0] * w.shape[1] * w.shape[2] > MAX_EXACT_K:
        raise OperandError(f"KH*KW*Cin exceeds {MAX_EXACT_K}: the accumulator could wrap")
    shape = conv_output_shape((1, *x.shape[-3:]), w.shape, stride, padding)
    if shape[1] < 1 or shape[2] < 1:
        raise OperandError(f"a {w.shape[0]}x{w.shape[1]} kernel with padding {padding} does "
                           f"not fit the {x.shape[-3]}x{x.shape[-2]} image")


def host_im2col(x, kh, kw, stride, padding):
    """(N*OH*OW, KH*KW*Cin) patches of NHWC ``x`` in (ky, kx, cin) order (host fallback)."""
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    win = win[:, ::stride, ::stride]                  # (N, OH, OW, Cin, KH, KW)
    return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(
        -1, kh * kw * x.shape[-1])


def run_conv2d(device, x, w, stride=1, padding=0, requant=None, *, blocking=None,
               timeout_cycles=None):
    """NHWC int8 convolution on ``device``: ``(out, RunStats)``.

    ``x`` is (N, H, W, Cin) or (H, W, Cin), ``w`` is (KH, KW, Cin, Cout); ``padding`` zeros
    surround the image on every side. ``out`` is NHWC int32, or int8 through ``requant``.
    """
    _check_conv_operands(x, w, stride, padding)
    batched = x.ndim == 4
    x4 = x if batched else x[None]
    config = device.config
    kh, kw, cin, cout = w.shape
    out_shape = conv_output_shape(x4.shape, w.shape, stride, padding)
    ideal = int(np.prod(out_shape[:3])) * kh * kw * cin * cout / (config.rows * config.cols)
    reason = im2col_limits(config, x4.shape, w.shape, stride, padding)
    vb = 4 if requant is None else 1
    if reason is None:
        plan = MemoryPlan(config.mem_bytes)
        addrs = _operands_to_device(device, plan, requant, cout,
                                    [("X", x4), ("W", pack_conv_weights(w, config.rows))])
        y_addr = plan.alloc(int(np.prod(out_shape)) * vb, "Y")
        try:
            program = compile_conv2d(config, x4.shape, w.shape, stride=stride, padding=padding,
                                     x_addr=addrs["X"], w_addr=addrs["W"], y_addr=y_addr,
                                     requant=requant, param_addr=addrs.get("params"),
                                     blocking=blocking)
        except CompileError as exc:
            reason = str(exc)
        else:
            out, stats = _run(device, plan, program, "Y", out_shape, "<i4" if vb == 4
                              else np.int8, ideal, timeout_cycles)
            return (out if batched else out[0]), stats
    patches = host_im2col(x4, kh, kw, stride, padding)
    out, stats = run_gemm(device, patches, w.reshape(kh * kw * cin, cout), requant,
                          timeout_cycles=timeout_cycles)
    stats = RunStats(stats.counters, ideal, stats.program, stats.regions, reason)
    out = out.reshape(out_shape)
    return (out if batched else out[0]), stats
