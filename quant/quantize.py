"""Post-training quantization of the fp32 transformer to W8A8 for the accelerator.

:func:`calibrate` runs the fp32 model on calibration text and records activation ranges;
:func:`quantize` turns a model and its calibration into a :class:`QuantizedModel`, a flat set
of integer tensors that the integer reference (:mod:`octet.quant.integer_reference`) executes
as accelerator GEMMs plus integer host operations (:mod:`octet.quant.host_ops`).

Decisions (``docs/model.md`` explains them):

* **Weights**: int8, symmetric, one scale per output channel (per column of the (in, out)
  matrix), after SmoothQuant smoothing.
* **Activations entering a weight GEMM**: int8, symmetric, one static scale per tensor,
  calibrated as the maximum over the calibration set. SmoothQuant (``alpha`` = 0.5) divides each
  input channel by ``s_j = max|X_j|**alpha / max|W_j|**(1 - alpha)`` and multiplies the
  weight's row j by it. The division is folded into whatever produces the activation: the
  LayerNorm gains (QKV, MLP up, LM head), the ``p @ V`` requantization multipliers (attention
  output projection) and the GELU table (MLP down), so it costs nothing at run time.
* **GEMM outputs**: requantized on the accelerator (TFLite arithmetic, ``golden.requantize``)
  to int8 with a static per-channel scale where the consumer allows one: q, k and v one scale
  per (layer, head); attention scores one scale and zero point per (layer, head); pre-GELU and
  the residual branch outputs one scale per channel. Biases are int32 in the accumulator's
  scale. The LM head returns raw int32 logits; ``logit_scale`` dequantizes them.
* **K and V cache**: int8 with one static scale per (layer, head), the same scale the QKV
  requantization produces, so cached entries never need rescaling and each head's
  ``q @ K^T`` and ``p @ V`` is a single GEMM with scalar operand scales.

Tested by ``tests/test_quant_integer.py``.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from octet.numerics import RequantParams
from octet.sim import golden

from . import host_ops
from .model import Model, ModelConfig, gelu

__all__ = ["QuantError", "Calibration", "QuantizedModel", "tensor_layout", "calibrate", "quantize",
           "save_quantized", "load_quantized", "DEFAULT_ALPHA", "W8A8_KIND"]

DEFAULT_ALPHA = 0.5
W8A8_KIND = "octet-transformer-w8a8"


class QuantError(ValueError):
    """Quantization could not produce parameters inside the numeric contract."""


@dataclass
class Calibration:
    """Activation statistics of one model on calibration text (all float64).

    ``absmax[name]`` is the per-channel maximum of |x| (per head for ``attn.q|k|v``),
    ``sumsq[name]`` the per-channel sum of squares of linear-layer inputs (Wanda's norms),
    ``score_range[i]`` the per-head (min, max) of the scaled attention scores of block i.
    """

    absmax: dict = field(default_factory=dict)
    sumsq: dict = field(default_factory=dict)
    score_range: dict = field(default_factory=dict)
    tokens: int = 0

    def input_norm(self, layer):
        """||X_j||_2 per input channel of a linear layer ``blocks.{i}.attn.qkv`` etc."""
        return np.sqrt(self.sumsq[layer + ".in"])


def calibrate(model: Model, windows, batch=8):
    """Run the fp32 model over ``windows`` (N, T) uint8 and collect a :class:`Calibration`."""
    cal = Calibration()

    def amax(name, value):
        cal.absmax[name] = np.maximum(cal.absmax.get(name, 0.0), value)

    def record(name, x):
        if name.endswith(".scores"):
            i = int(name.split(".")[1])
            finite = np.isfinite(x)
            lo = np.where(finite, x, np.inf).min(axis=(0, 2, 3)).astype(np.float64)
            hi = np.where(finite, x, -np.inf).max(axis=(0, 2, 3)).astype(np.float64)
            old = cal.score_range.get(i)
            cal.score_range[i] = (lo, hi) if old is None else (np.minimum(old[0], lo),
                                                               np.maximum(old[1], hi))
        elif name.endswith((".q", ".k", ".v")):     # (B, H, T, hd): per head
            amax(name, np.abs(x).max(axis=(0, 2, 3)).astype(np.float64))
        else:
            flat = np.abs(x.reshape(-1, x.shape[-1]).astype(np.float64))
            amax(name, flat.max(axis=0))
            if name.endswith(".in"):
                cal.sumsq[name] = cal.sumsq.get(name, 0.0) + (flat * flat).sum(axis=0)

    windows = np.asarray(windows)
    for start in range(0, len(windows), batch):
        model.forward(windows[start:start + batch], record)
    cal.tokens = int(windows.size)
    return cal


def tensor_layout(config: ModelConfig):
    """Name -> (dtype, shape) of every tensor of a :class:`QuantizedModel`.

    Linear layers ``L`` have ``L.weight`` int8 (in, out) and, except the LM head, the
    requantization ``L.multiplier``, ``L.shift``, ``L.bias`` (int32, out); residual branches add
    ``L.residual`` (int32 multipliers, see :func:`host_ops.residual_add`). LayerNorms have
    ``gain`` (int32) and ``bias`` (int64), see :func:`host_ops.layer_norm`.
    """
    d, ff, h, hd = config.d_model, config.d_ff, config.n_head, config.head_dim
    i8, i32, i64 = np.dtype(np.int8), np.dtype(np.int32), np.dtype(np.int64)
    layout = {"tok_emb": (i32, (config.vocab_size, d)), "pos_emb": (i32, (config.context, d))}

    def linear(name, k, n, requant=True):
        layout[name + ".weight"] = (i8, (k, n))
        if requant:
            for part in ("multiplier", "shift", "bias"):
                layout[f"{name}.{part}"] = (i32, (n,))

    def norm(name):
        layout[name + ".gain"] = (i32, (d,))
        layout[name + ".bias"] = (i64, (d,))

    for i in range(config.n_layer):
        pre = f"blocks.{i}."
        norm(pre + "ln1")
        linear(pre + "attn.qkv", d, 3 * d)
        for part in ("multiplier", "shift", "zero_point"):
            layout[f"{pre}attn.scores.{part}"] = (i32, (h,))
        layout[pre + "attn.softmax_lut"] = (i64, (h, 256))
        layout[pre + "attn.pv.multiplier"] = (i32, (h, hd))
        layout[pre + "attn.pv.shift"] = (i32, (h, hd))
        linear(pre + "attn.out", d, d)
        layout[pre + "attn.out.residual"] = (i32, (d,))
        norm(pre + "ln2")
        linear(pre + "mlp.up", d, ff)
        layout[pre + "mlp.gelu_lut"] = (i8, (ff, 256))
        linear(pre + "mlp.down", ff, d)
        layout[pre + "mlp.down.residual"] = (i32, (d,))
    norm("ln_f")
    linear("head", d, config.vocab_size, requant=False)
    layout["head.logit_scale"] = (np.dtype(np.float64), (config.vocab_size,))
    return layout


class QuantizedModel:
    """A W8A8 model: its fp32 configuration, integer tensors and the scales behind them.

    ``tensors`` maps names to int8/int32/int64 arrays (and the float64 ``head.logit_scale``);
    :mod:`octet.quant.integer_reference` documents how each is used. ``scales`` holds the real
    scales (float64) the integers were derived from, for inspection and tests.
    """

    def __init__(self, config: ModelConfig, tensors, scales=None, settings=None):
        layout = tensor_layout(config)
        for name, (dtype, shape) in layout.items():
            if name not in tensors:
                raise QuantError(f"quantized model is missing tensor {name!r}")
            value = tensors[name]
            if value.dtype != dtype or value.shape != shape:
                raise QuantError(f"quantized tensor {name!r} is {value.dtype} {value.shape}, "
                                 f"expected {np.dtype(dtype)} {shape}")
        extra = sorted(set(tensors) - set(layout))
        if extra:
            raise QuantError(f"unexpected quantized tensor {extra[0]!r}")
        self.config = config
        self.tensors = tensors
        self.scales = scales or {}
        self.settings = dict(settings or {})

    def __getitem__(self, name):
        return self.tensors[name]

    def requant(self, name):
        """The :class:`RequantParams` of weight GEMM ``name`` (multiplier, shift, bias)."""
        return RequantParams.create(self.tensors[name + ".multiplier"],
                                    self.tensors[name + ".shift"], self.tensors[name + ".bias"])

    @property
    def eps_q(self):
        return host_ops.ln_eps_q(self.config.ln_eps)

    @property
    def weight_bytes(self):
        return sum(v.nbytes for k, v in self.tensors.items() if k.endswith(".weight"))

    def sparsity(self, name):
        """Fraction of zero int8 weights in linear layer ``name``."""
        return float((self.tensors[name + ".weight"] == 0).mean())


def _multiplier(real, what):
    real = np.asarray(real, dtype=np.float64)
    if not np.isfinite(real).all() or (real <= 0).any():
        raise QuantError(f"{what}: requantization scale must be positive and finite")
    mult, shift = golden.quantize_multiplier(real)
    if (shift < -31).any() or (shift > 30).any():
        raise QuantError(f"{what}: scale {real.min():.3g}..{real.max():.3g} needs a shift "
                         "outside [-31, 30]")
    return mult.astype(np.int32), shift.astype(np.int32)


def _scale(absmax, levels=127.0):
    """Symmetric int8 scale for a maximum magnitude (a tiny floor avoids dividing by zero)."""
    return np.maximum(np.asarray(absmax, dtype=np.float64), 1e-8) / levels


def _int32(x, what):
    x = host_ops.round_half_up(x)
    if np.abs(x).max(initial=0) >= 2**31:
        raise QuantError(f"{what} does not fit int32")
    return x.astype(np.int32)


def _smooth(act_absmax, weight, alpha):
    """SmoothQuant factors per input channel (rows of the (in, out) weight)."""
    w_absmax = np.abs(weight).max(axis=1).astype(np.float64)
    s = np.maximum(act_absmax, 1e-5) ** alpha / np.maximum(w_absmax, 1e-5) ** (1 - alpha)
    return np.clip(s, 1e-4, 1e4)


def _linear(out, name, weight, bias, in_scale, out_scale):
    """Quantize a smoothed (in, out) weight per output channel; requant to ``out_scale``.

    ``in_scale`` is the per-tensor scale of the int8 input. With ``out_scale`` None the GEMM
    keeps its int32 accumulator (LM head) and the accumulator scale is returned.
    """
    w_scale = _scale(np.abs(weight).max(axis=0))
    out[name + ".weight"] = np.clip(host_ops.round_half_up(weight / w_scale),
                                    -127, 127).astype(np.int8)
    acc_scale = in_scale * w_scale
    if out_scale is None:
        return acc_scale
    out[name + ".multiplier"], out[name + ".shift"] = _multiplier(acc_scale / out_scale, name)
    out[name + ".bias"] = _int32(np.asarray(bias, np.float64) / acc_scale, name + " bias")
    return acc_scale


def _layer_norm(out, name, weight, bias, channel_scale):
    g = np.asarray(weight, np.float64) / channel_scale * 2.0 ** host_ops.LN_FRAC_BITS
    b = np.asarray(bias, np.float64) / channel_scale * 2.0 ** host_ops.LN_FRAC_BITS
    out[name + ".gain"] = _int32(g, name + " gain")
    out[name + ".bias"] = host_ops.round_half_up(b)
    if np.abs(out[name + ".bias"]).max() >= 2**40:
        raise QuantError(f"{name} bias is too large for the fixed-point LayerNorm")


def _residual_mult(scale):
    return _int32(scale * 2.0 ** (host_ops.RESIDUAL_FRAC_BITS + host_ops.RESIDUAL_MULT_BITS),
                  "residual multiplier")


def quantize(model: Model, cal: Calibration, alpha=DEFAULT_ALPHA):
    """Quantize ``model`` with calibration ``cal`` into a :class:`QuantizedModel`."""
    cfg = model.config
    p = model.params
    h, hd = cfg.n_head, cfg.head_dim
    t: dict = {}
    sc: dict = {}
    f = 2.0 ** host_ops.RESIDUAL_FRAC_BITS
    for name in ("tok_emb", "pos_emb"):
        t[name] = _int32(p[name].astype(np.float64) * f, name)

    def smoothed_input(layer, weight):
        """Smoothing factors, per-tensor input scale and per-channel input scale of a linear."""
        act = cal.absmax[layer + ".in"]
        s = _smooth(act, weight, alpha)
        x_scale = float(_scale((act / s).max()))
        sc[layer + ".smooth"] = s
        sc[layer + ".in_scale"] = x_scale
        return s, x_scale, x_scale * s

    for i in range(cfg.n_layer):
        pre = f"blocks.{i}."
        # --- attention: LN1 -> QKV -> per head (scores, softmax, p @ V) -> output projection
        w = p[pre + "attn.qkv.weight"].astype(np.float64)
        s, x_scale, a = smoothed_input(pre + "attn.qkv", w)
        _layer_norm(t, pre + "ln1", p[pre + "ln1.weight"], p[pre + "ln1.bias"], a)
        qkv_scale = {kind: _scale(cal.absmax[pre + "attn." + kind]) for kind in "qkv"}
        out_scale = np.concatenate([np.repeat(qkv_scale[kind], hd) for kind in "qkv"])
        _linear(t, pre + "attn.qkv", w * s[:, None], p[pre + "attn.qkv.bias"], x_scale,
                out_scale)
        for kind in "qkv":
            sc[pre + "attn." + kind + ".scale"] = qkv_scale[kind]

        lo, hi = cal.score_range[i]
        lo, hi = np.minimum(lo, -1e-3), np.maximum(hi, 1e-3)
        z_scale = (hi - lo) / 255.0
        zero = np.clip(host_ops.round_half_up(-128 - lo / z_scale), -128, 127)
        real = qkv_scale["q"] * qkv_scale["k"] / math.sqrt(hd) / z_scale
        t[pre + "attn.scores.multiplier"], t[pre + "attn.scores.shift"] = _multiplier(
            real, pre + "attn.scores")
        t[pre + "attn.scores.zero_point"] = zero.astype(np.int32)
        sc[pre + "attn.scores.scale"] = z_scale
        k = np.arange(256, dtype=np.float64)
        t[pre + "attn.softmax_lut"] = host_ops.round_half_up(
            2.0 ** host_ops.SOFTMAX_LUT_BITS * np.exp(-k[None, :] * z_scale[:, None]))

        w = p[pre + "attn.out.weight"].astype(np.float64)
        s, x_scale, a = smoothed_input(pre + "attn.out", w)
        # p @ V accumulates in units of (1/255) * v_scale[head]; requantize to a per channel.
        v_scale = np.repeat(qkv_scale["v"], hd)
        mult, shift = _multiplier(v_scale / host_ops.PROB_LEVELS / a, pre + "attn.pv")
        t[pre + "attn.pv.multiplier"] = mult.reshape(h, hd)
        t[pre + "attn.pv.shift"] = shift.reshape(h, hd)
        o_scale = _scale(cal.absmax[pre + "attn.out.out"])
        _linear(t, pre + "attn.out", w * s[:, None], p[pre + "attn.out.bias"], x_scale, o_scale)
        t[pre + "attn.out.residual"] = _residual_mult(o_scale)
        sc[pre + "attn.out.out_scale"] = o_scale

        # --- MLP: LN2 -> up -> GELU table -> down
        w = p[pre + "mlp.up.weight"].astype(np.float64)
        s, x_scale, a = smoothed_input(pre + "mlp.up", w)
        _layer_norm(t, pre + "ln2", p[pre + "ln2.weight"], p[pre + "ln2.bias"], a)
        u_scale = _scale(cal.absmax[pre + "mlp.up.out"])
        _linear(t, pre + "mlp.up", w * s[:, None], p[pre + "mlp.up.bias"], x_scale, u_scale)
        sc[pre + "mlp.up.out_scale"] = u_scale

        w = p[pre + "mlp.down.weight"].astype(np.float64)
        s, x_scale, a = smoothed_input(pre + "mlp.down", w)
        codes = np.arange(-128, 128, dtype=np.float64)
        g = gelu(codes[None, :] * u_scale[:, None]) / a[:, None]
        t[pre + "mlp.gelu_lut"] = np.clip(host_ops.round_half_up(g), -128, 127).astype(np.int8)
        d_scale = _scale(cal.absmax[pre + "mlp.down.out"])
        _linear(t, pre + "mlp.down", w * s[:, None], p[pre + "mlp.down.bias"], x_scale, d_scale)
        t[pre + "mlp.down.residual"] = _residual_mult(d_scale)
        sc[pre + "mlp.down.out_scale"] = d_scale

    w = model.head_weight().astype(np.float64)
    act = cal.absmax["head.in"]
    s = _smooth(act, w, alpha)
    x_scale = float(_scale((act / s).max()))
    _layer_norm(t, "ln_f", p["ln_f.weight"], p["ln_f.bias"], x_scale * s)
    acc_scale = _linear(t, "head", w * s[:, None], None, x_scale, None)
    t["head.logit_scale"] = acc_scale
    settings = {"alpha": alpha, "calibration_tokens": cal.tokens,
                "residual_frac_bits": host_ops.RESIDUAL_FRAC_BITS,
                "ln_frac_bits": host_ops.LN_FRAC_BITS,
                "softmax_lut_bits": host_ops.SOFTMAX_LUT_BITS}
    return QuantizedModel(cfg, t, sc, settings)



def save_quantized(qmodel: QuantizedModel, path):
    """Write a :class:`QuantizedModel` as a model file of kind :data:`W8A8_KIND`.

    A runtime that loads this file instead of re-quantizing gets bit-identical integers on
    every machine (calibration itself runs in float32 BLAS, whose last bits may differ).
    """
    from .model_file import write_tensors
    tensors = dict(qmodel.tensors)
    for name, value in qmodel.scales.items():
        tensors["scale." + name] = np.asarray(value, dtype=np.float64)
    write_tensors(path, W8A8_KIND, qmodel.config.to_dict(), tensors,
                  {"settings": qmodel.settings})


def load_quantized(path):
    """Read a :class:`QuantizedModel` written by :func:`save_quantized`."""
    from .model_file import ModelFileError, read_tensors
    header, tensors = read_tensors(path, W8A8_KIND)
    try:
        config = ModelConfig.from_dict(header["config"])
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"model file {path}: bad configuration: {exc}") from None
    scales = {k[len("scale."):]: v for k, v in tensors.items() if k.startswith("scale.")}
    ints = {k: v for k, v in tensors.items() if not k.startswith("scale.")}
    try:
        return QuantizedModel(config, ints, scales, header["metadata"].get("settings"))
    except QuantError as exc:
        raise ModelFileError(f"model file {path}: {exc}") from None
