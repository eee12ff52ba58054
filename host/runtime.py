"""Run the quantized transformer on an accelerator device: prefill, decode, generate.

:class:`DeviceTransformer` places a :class:`~octet.quant.quantize.QuantizedModel` on a
:class:`~octet.host.device.Device` once (:class:`~octet.host.model_layout.ModelLayout`:
packed weights, requantization tables, KV cache, buffers), then runs every step as the
programs of :class:`~octet.host.model_program.ProgramPlanner` (four per block, one for the
LM head), with the host operations in between in exactly the integer reference's arithmetic
(:mod:`octet.quant.host_ops`). The logits are **bit-identical** to
:class:`~octet.quant.integer_reference.IntegerTransformer` with the golden GEMM: same
integers, any backend, any chunking. ``docs/runtime.md`` describes the design.

Per step the host writes the LayerNorm / GELU outputs, the attention probabilities and the
``p @ V`` table (its bias is ``128 * sum(V)``, which the KV cache keeps), and reads back the
attention scores, the new value rows, the GEMM results and the logits. Every program's
performance counters are kept per step (:class:`StepStats`).

:func:`generate_on_device` is the whole generation as one module-level function, so a
Verilator session runs it inside the simulation (``device.call``: one round trip, memory
through the simulator's backdoor); tokens are passed back as they are produced when the
device offers ``emit`` (see :mod:`octet.host.verilator_session`).

Tested by ``tests/test_runtime.py``.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from octet.quant import host_ops
from octet.quant.integer_reference import InferenceError
from octet.quant.quantize import QuantizedModel
from octet.sim import golden

from .model_layout import PROGRAM_BYTES, ModelLayout
from .model_program import ProgramPlanner
from .sampling import Sampler

__all__ = ["CLOCK_HZ", "StepStats", "GenerationResult", "DeviceTransformer",
           "generate_on_device"]

#: The design's target clock: cycle counts are converted to seconds and tokens per second at
#: this frequency (100 MHz, a comfortable clock for an 8 x 8 int8 array on a mid-range FPGA).
CLOCK_HZ = 100_000_000

_COUNTERS = ("cycles", "compute_cycles", "dma_busy_cycles", "dma_stall_cycles", "bytes_read",
             "bytes_written", "instructions")


@dataclass
class StepStats:
    """Cost of one step: ``kind`` ("prefill", "decode" or "refill"), its tokens and first
    position, the programs run, their summed counters, the bytes the host wrote to and read
    from device memory (programs included) and the wall time."""

    kind: str
    tokens: int
    position: int
    programs: int = 0
    counters: dict = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    host_bytes: int = 0
    wall_s: float = 0.0

    @property
    def cycles(self):
        return self.counters["cycles"]


@dataclass
class GenerationResult:
    """What :meth:`DeviceTransformer.generate` produced and what it cost; ``logits`` are the
    int32 logits each byte was sampled from (what backends are compared on)."""

    tokens: bytes
    steps: list
    weight_bytes: int
    bus_bytes: int
    setup_wall_s: float = 0.0
    logits: list = field(default_factory=list)


class DeviceTransformer:
    """A quantized transformer resident on an accelerator device.

    Parameters
    ----------
    device : Device
    qmodel : QuantizedModel
    max_rows : int
        Tokens per step: longer prompts are prefilled in chunks of this many (the result does
        not depend on it).
    block_tiles, gemm_tiles : int, optional
        Weight streaming granularity (:class:`~octet.host.model_program.ProgramPlanner`).
    timeout_cycles : int, optional
        Give up on a program after this many cycles (default: wait).
    host_requant : bool
        Requantize the results the host reads anyway (output projection, MLP up and down) on
        the host, bit for bit as the tables would (``golden.requantize``), instead of on the
        accelerator; see :class:`~octet.host.model_program.ProgramPlanner`.
    """

    def __init__(self, device, qmodel, *, max_rows=16, block_tiles=None, gemm_tiles=None,
                 timeout_cycles=None, host_requant=False):
        if not isinstance(qmodel, QuantizedModel):
            raise TypeError(f"qmodel must be a QuantizedModel, not {type(qmodel).__name__}")
        if timeout_cycles is not None and (isinstance(timeout_cycles, bool) or not isinstance(
                timeout_cycles, int) or timeout_cycles < 1):
            raise ValueError(f"timeout_cycles must be a positive integer or None, not "
                             f"{timeout_cycles!r}")
        self.device = device
        self.q = qmodel
        self.config = qmodel.config
        self.layout = ModelLayout(qmodel, device.config, max_rows)
        self.planner = ProgramPlanner(self.layout, block_tiles, gemm_tiles, host_requant)
        self._requant = {name: qmodel.requant(name) for name in self.layout.tables
                         if name.endswith(("attn.out", "mlp.up", "mlp.down"))}
        self.kv = self.layout.kv
        self.timeout_cycles = timeout_cycles
        self.steps = []
        self.layout.write_constants(device)
        self.kv.attach(device)
        self._step = None

    # --- host <-> device -----------------------------------------------------------------------

    def _write(self, addr, array):
        data = np.ascontiguousarray(array).tobytes()
        self._step.host_bytes += len(data)
        self.device.write_mem(addr, data)

    def _read(self, addr, shape, dtype=np.int8):
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        self._step.host_bytes += n
        return np.frombuffer(self.device.read_mem(addr, n), dtype=dtype).reshape(shape)

    def _result(self, name, shape):
        """The int8 result of weight op ``name`` (requantized here with ``host_requant``)."""
        if not self.planner.host_requant:
            return self._read(self.layout.buffers["result"], shape)
        acc = self._read(self.layout.buffers["result"], shape, "<i4").astype(np.int32)
        return golden.requantize(acc, self._requant[name])

    def _run(self, program):
        if len(program.blob) > PROGRAM_BYTES:
            raise InferenceError(f"program {program.tag} needs {len(program.blob)} bytes, "
                                 f"more than the {PROGRAM_BYTES} reserved for it")
        addr = self.layout.buffers["program"]
        self.device.write_mem(addr, program.blob)
        result = self.device.run(addr, timeout_cycles=self.timeout_cycles)
        step = self._step
        step.programs += 1
        step.host_bytes += len(program.blob)
        for name in _COUNTERS:
            step.counters[name] += result.counters.get(name, 0)

    # --- the forward pass ----------------------------------------------------------------------

    def reset(self):
        """Empty the KV cache and forget the scratchpads' contents."""
        self.kv.reset()
        self.planner.reset()

    def forward(self, tokens, logits="all", kind=None):
        """Append ``tokens`` to the cache; int32 logits of every token (``"all"``, (T, vocab))
        or of the last one only (``"last"``, (1, vocab))."""
        cfg = self.config
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if logits not in ("all", "last"):
            raise ValueError(f"logits must be 'all' or 'last', not {logits!r}")
        if len(tokens) == 0:
            raise InferenceError("no tokens to process")
        if self.kv.length + len(tokens) > cfg.context:
            raise InferenceError(f"{self.kv.length + len(tokens)} positions exceed the "
                                 f"context of {cfg.context}")
        if tokens.min() < 0 or tokens.max() >= cfg.vocab_size:
            raise InferenceError(f"tokens must lie in [0, {cfg.vocab_size})")
        kind = kind or ("decode" if len(tokens) == 1 and self.kv.length else "prefill")
        # Chunks of equal size: a GEMM of m rows costs max(m, R) cycles per tile, so a short
        # last chunk would cost as much as a full one.
        chunks = -(-len(tokens) // self.layout.max_rows)
        bounds = [len(tokens) * c // chunks for c in range(chunks + 1)]
        out = []
        for s, e in zip(bounds, bounds[1:], strict=False):
            wanted = logits if e == len(tokens) or logits == "all" else None
            out.append(self._chunk(tokens[s:e], kind, wanted))
        return np.concatenate([o for o in out if o is not None], axis=0)

    def _chunk(self, tokens, kind, logits):
        T, t0 = len(tokens), self.kv.length
        self._step = StepStats(kind, T, t0)
        start = time.monotonic()
        try:
            self.kv.reserve(t0 + T)
            result = self._layers(tokens, t0, logits)
        except BaseException:
            self.reset()
            raise
        self.kv.length = t0 + T
        self._step.wall_s = time.monotonic() - start
        self.steps.append(self._step)
        return result

    def _layers(self, tokens, t0, logits):
        q, mc, lay, plan = self.q, self.config, self.layout, self.planner
        buf = lay.buffers
        T = len(tokens)
        S = t0 + T
        d, H, ff = mc.d_model, mc.n_head, mc.d_ff
        eps = q.eps_q
        valid = np.arange(S)[None, :] <= (t0 + np.arange(T))[:, None]
        x = host_ops.embed(q["tok_emb"], q["pos_emb"], tokens, t0)
        for i in range(mc.n_layer):
            pre = f"blocks.{i}."
            self._write(buf["act"], host_ops.layer_norm(x, q[pre + "ln1.gain"],
                                                        q[pre + "ln1.bias"], eps))
            self._run(plan.attention_scores(i, T, t0, prefetch=pre + "attn.out"))
            self.kv.observe_values(self.device, i, t0, T)
            self._step.host_bytes += H * T * mc.head_dim
            z = self._read(buf["scores"], (H, T, S))
            lut = q[pre + "attn.softmax_lut"]
            p = np.stack([host_ops.softmax(z[h], valid, lut[h]) for h in range(H)])
            self._write(buf["probs"], p)
            self._write(lay.tables[pre + "attn.pv"], np.frombuffer(
                lay.pv_table(i, self.kv.value_sums(i)), dtype=np.uint8))
            self._run(plan.attention_output(i, T, t0, prefetch=pre + "mlp.up"))
            x = host_ops.residual_add(x, self._result(pre + "attn.out", (T, d)),
                                      q[pre + "attn.out.residual"])
            self._write(buf["act"], host_ops.layer_norm(x, q[pre + "ln2.gain"],
                                                        q[pre + "ln2.bias"], eps))
            self._run(plan.linear(pre + "mlp.up", T, prefetch=pre + "mlp.down"))
            g = host_ops.gelu(self._result(pre + "mlp.up", (T, ff)), q[pre + "mlp.gelu_lut"])
            self._write(buf["act"], g)
            nxt = f"blocks.{i + 1}.attn.qkv" if i + 1 < mc.n_layer else \
                "head" if logits else "blocks.0.attn.qkv"
            self._run(plan.linear(pre + "mlp.down", T, prefetch=nxt))
            x = host_ops.residual_add(x, self._result(pre + "mlp.down", (T, d)),
                                      q[pre + "mlp.down.residual"])
        if logits is None:
            return None
        if logits == "last":
            x = x[-1:]
        self._write(buf["act"], host_ops.layer_norm(x, q["ln_f.gain"], q["ln_f.bias"], eps))
        self._run(plan.linear("head", len(x), prefetch="blocks.0.attn.qkv"))
        return self._read(buf["logits"], (len(x), mc.vocab_size), "<i4").astype(np.int32)

    def prefill(self, tokens, logits="all"):
        """Logits of ``tokens`` from an empty cache."""
        self.reset()
        return self.forward(tokens, logits, kind="prefill")

    def decode(self, token):
        """Logits (vocab,) of one more token."""
        return self.forward([token], "last", kind="decode")[0]

    def dequantize_logits(self, logits):
        """Real-valued logits: the int32 accumulators times the per-column scale."""
        return np.asarray(logits, dtype=np.float64) * self.q["head.logit_scale"]

    def generate(self, prompt, max_new, sampler=None, on_token=None):
        """Continue ``prompt`` (bytes) by ``max_new`` bytes.

        ``sampler`` (default greedy) picks each byte from the dequantized logits; when the
        context fills, its last half is prefilled again (as the integer reference does).
        ``on_token(token, step)`` is called after each byte with the step that produced its
        logits. Returns a :class:`GenerationResult`.
        """
        prompt = bytes(prompt)
        ctx = self.config.context
        if not prompt:
            raise InferenceError("the prompt must hold at least one byte")
        if len(prompt) > ctx:
            raise InferenceError(f"the prompt has {len(prompt)} bytes but the model's context "
                                 f"holds {ctx}")
        if isinstance(max_new, bool) or not isinstance(max_new, int) or max_new < 0:
            raise InferenceError(f"max_new must be an integer >= 0, not {max_new!r}")
        sampler = sampler or Sampler()
        self.steps = []
        tokens = list(prompt)
        out = bytearray()
        seen = []
        if max_new:
            last = self.prefill(tokens, "last")[-1]
        for n in range(max_new):
            seen.append(np.array(last, dtype=np.int32))
            nxt = sampler(self.dequantize_logits(last))
            out.append(nxt)
            tokens.append(nxt)
            if on_token is not None:
                on_token(nxt, self.steps[-1])
            if n == max_new - 1:
                break
            if self.kv.length == ctx:
                tokens = tokens[-(ctx // 2):]
                self.reset()
                last = self.forward(tokens, "last", kind="refill")[-1]
            else:
                last = self.decode(nxt)
        return GenerationResult(bytes(out), list(self.steps), self.layout.weight_bytes,
                                self.device.config.bus_bytes, logits=seen)


def generate_on_device(device, qmodel, prompt, max_new, *, temperature=0.0, top_k=0, seed=0,
                       max_rows=16, timeout_cycles=None, stream=True, host_requant=False):
    """Place ``qmodel`` on ``device`` and generate: a :class:`GenerationResult`.

    A module-level function, so ``device.call(generate_on_device, ...)`` runs the whole loop
    next to the device. With ``stream`` and a device that has ``emit`` (a Verilator session's
    simulation side), each byte is sent back as ``(token, step kind, cycles, wall_s)`` when
    it is produced.
    """
    sampler = Sampler(temperature, top_k, seed)
    start = time.monotonic()
    runtime = DeviceTransformer(device, qmodel, max_rows=max_rows,
                                timeout_cycles=timeout_cycles, host_requant=host_requant)
    setup = time.monotonic() - start
    emit = getattr(device, "emit", None) if stream else None
    on_token = None if emit is None else \
        (lambda tok, step: emit((tok, step.kind, step.cycles, step.wall_s)))
    result = runtime.generate(prompt, max_new, sampler, on_token)
    result.setup_wall_s = setup
    return result
