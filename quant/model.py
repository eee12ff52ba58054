"""A small GPT-2-style byte-level transformer: configuration, parameters and the fp32 reference.

The model is decoder-only: token and learned position embeddings, ``n_layer`` pre-LayerNorm
blocks (multi-head causal self-attention, then a GELU MLP, each added to the residual stream),
a final LayerNorm and an LM head over the 256 byte values. The LM head is the transposed token
embedding unless ``tie_embeddings`` is false.

Every matrix weight is stored as (in, out), so a linear layer is ``x @ W + b`` and the weight
is directly the B operand (K, N) of an accelerator GEMM. :func:`forward` is the fp32 NumPy
reference: it needs no torch, and :mod:`octet.quant.train` implements the same arithmetic in
torch (``tests/test_quant_model.py`` checks that the two agree). GELU is GPT-2's tanh
approximation.

Parameter names (the model file's tensor table uses them)::

    tok_emb (vocab, d)          pos_emb (context, d)
    blocks.{i}.ln1.weight (d)   blocks.{i}.ln1.bias (d)
    blocks.{i}.attn.qkv.weight (d, 3d)   .bias (3d)     columns: q | k | v, head h at h*hd
    blocks.{i}.attn.out.weight (d, d)    .bias (d)
    blocks.{i}.ln2.weight (d)   blocks.{i}.ln2.bias (d)
    blocks.{i}.mlp.up.weight (d, ff)     .bias (ff)
    blocks.{i}.mlp.down.weight (ff, d)   .bias (d)
    ln_f.weight (d)             ln_f.bias (d)
    head.weight (d, vocab)      only when tie_embeddings is false
"""

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["ModelConfig", "Model", "ModelError", "LINEAR_NAMES", "gelu", "layer_norm",
           "forward", "init_params", "param_shapes", "log_softmax", "bits_per_byte"]

#: The linear layers of one block, in the order the forward pass uses them.
LINEAR_NAMES = ("attn.qkv", "attn.out", "mlp.up", "mlp.down")


class ModelError(ValueError):
    """A configuration or parameter set that does not describe a valid model."""


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of the transformer (the defaults are the shipped ``octet-demo-v1``)."""

    vocab_size: int = 256
    context: int = 256
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    d_ff: int = 512
    tie_embeddings: bool = True
    ln_eps: float = 1e-5

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type is int and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
                raise ModelError(f"model {f.name} must be a positive integer, not {value!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ModelError(f"model tie_embeddings must be a bool, not "
                             f"{self.tie_embeddings!r}")
        if not (isinstance(self.ln_eps, float) and 0 < self.ln_eps < 1):
            raise ModelError(f"model ln_eps must be a float in (0, 1), not {self.ln_eps!r}")
        if self.d_model % self.n_head:
            raise ModelError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")

    @property
    def head_dim(self):
        return self.d_model // self.n_head

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise ModelError(f"model config must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)


def param_shapes(config: ModelConfig):
    """Name -> shape of every parameter, in a fixed order."""
    d, ff = config.d_model, config.d_ff
    shapes = {"tok_emb": (config.vocab_size, d), "pos_emb": (config.context, d)}
    for i in range(config.n_layer):
        p = f"blocks.{i}."
        shapes.update({
            p + "ln1.weight": (d,), p + "ln1.bias": (d,),
            p + "attn.qkv.weight": (d, 3 * d), p + "attn.qkv.bias": (3 * d,),
            p + "attn.out.weight": (d, d), p + "attn.out.bias": (d,),
            p + "ln2.weight": (d,), p + "ln2.bias": (d,),
            p + "mlp.up.weight": (d, ff), p + "mlp.up.bias": (ff,),
            p + "mlp.down.weight": (ff, d), p + "mlp.down.bias": (d,),
        })
    shapes.update({"ln_f.weight": (d,), "ln_f.bias": (d,)})
    if not config.tie_embeddings:
        shapes["head.weight"] = (d, config.vocab_size)
    return shapes


def init_params(config: ModelConfig, seed=0):
    """GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
            params[name] = np.ones(shape, np.float32)
        elif name.endswith(".bias"):
            params[name] = np.zeros(shape, np.float32)
        else:
            std = 0.02
            if name.endswith(("attn.out.weight", "mlp.down.weight")):
                std /= math.sqrt(2 * config.n_layer)
            params[name] = (rng.standard_normal(shape) * std).astype(np.float32)
    return params


class Model:
    """A configuration and its fp32 parameters, checked against each other."""

    def __init__(self, config: ModelConfig, params, metadata=None):
        shapes = param_shapes(config)
        missing = [n for n in shapes if n not in params]
        if missing:
            raise ModelError(f"model is missing parameter {missing[0]!r}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        extra = sorted(set(params) - set(shapes))
        if extra:
            raise ModelError(f"unexpected parameter {extra[0]!r} for this config")
        self.params = {}
        for name, shape in shapes.items():
            value = np.asarray(params[name])
            if value.shape != shape:
                raise ModelError(f"parameter {name!r} has shape {value.shape}, config "
                                 f"expects {shape}")
            if value.dtype != np.float32:
                raise ModelError(f"parameter {name!r} has dtype {value.dtype}, expected float32")
            if not np.isfinite(value).all():
                raise ModelError(f"parameter {name!r} contains NaN or infinity")
            self.params[name] = value
        self.config = config
        self.metadata = dict(metadata or {})

    @property
    def num_params(self):
        return sum(int(v.size) for v in self.params.values())

    def head_weight(self):
        """The LM head as (d, vocab): the transposed token embedding when tied."""
        if self.config.tie_embeddings:
            return self.params["tok_emb"].T
        return self.params["head.weight"]

    def with_params(self, updates):
        """A copy with some parameters replaced (used by pruning)."""
        params = dict(self.params)
        params.update(updates)
        return Model(self.config, params, self.metadata)

    def forward(self, tokens, record=None):
        return forward(self, tokens, record)


def gelu(x):
    """GPT-2's GELU (tanh approximation), in the dtype of ``x``."""
    x = np.asarray(x)
    c = x.dtype.type(math.sqrt(2 / math.pi))
    return x.dtype.type(0.5) * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x * x * x)))


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)
    return xc / np.sqrt(var + np.float32(eps)) * weight + bias


def forward(model: Model, tokens, record=None):
    """fp32 logits (B, T, vocab) of byte tokens (B, T) or (T,) (then (T, vocab)).

    ``record``, if given, is called as ``record(name, array)`` with the inputs of every linear
    layer and the attention internals; calibration and Wanda pruning use it. Names:
    ``blocks.{i}.attn.qkv.in`` (LN1 output), ``blocks.{i}.attn.q|k|v`` (B, H, T, hd),
    ``blocks.{i}.attn.scores`` (B, H, T, T, scaled, causal entries only as NaN-free values with
    -inf above the diagonal), ``blocks.{i}.attn.out.in``, ``blocks.{i}.attn.out.out``,
    ``blocks.{i}.mlp.up.in``, ``blocks.{i}.mlp.up.out`` (pre-GELU), ``blocks.{i}.mlp.down.in``,
    ``blocks.{i}.mlp.down.out``, ``head.in`` (final LayerNorm output).
    """
    cfg = model.config
    p = model.params
    tokens = np.asarray(tokens)
    single = tokens.ndim == 1
    if single:
        tokens = tokens[None]
    b, t = tokens.shape
    if t > cfg.context:
        raise ModelError(f"sequence of {t} tokens exceeds the context of {cfg.context}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= cfg.vocab_size):
        raise ModelError(f"tokens must lie in [0, {cfg.vocab_size})")
    rec = record or (lambda name, value: None)
    h, hd = cfg.n_head, cfg.head_dim
    x = p["tok_emb"][tokens] + p["pos_emb"][:t]
    mask = np.triu(np.full((t, t), -np.inf, np.float32), 1)
    scale = np.float32(1 / math.sqrt(hd))
    for i in range(cfg.n_layer):
        pre = f"blocks.{i}."
        a = layer_norm(x, p[pre + "ln1.weight"], p[pre + "ln1.bias"], cfg.ln_eps)
        rec(pre + "attn.qkv.in", a)
        qkv = a @ p[pre + "attn.qkv.weight"] + p[pre + "attn.qkv.bias"]
        q, k, v = (qkv[..., j * cfg.d_model:(j + 1) * cfg.d_model]
                   .reshape(b, t, h, hd).transpose(0, 2, 1, 3) for j in range(3))
        rec(pre + "attn.q", q)
        rec(pre + "attn.k", k)
        rec(pre + "attn.v", v)
        s = (q @ k.transpose(0, 1, 3, 2)) * scale + mask
        rec(pre + "attn.scores", s)
        s = s - s.max(axis=-1, keepdims=True)
        e = np.exp(s)
        att = e / e.sum(axis=-1, keepdims=True)
        o = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, cfg.d_model)
        rec(pre + "attn.out.in", o)
        o = o @ p[pre + "attn.out.weight"] + p[pre + "attn.out.bias"]
        rec(pre + "attn.out.out", o)
        x = x + o
        m = layer_norm(x, p[pre + "ln2.weight"], p[pre + "ln2.bias"], cfg.ln_eps)
        rec(pre + "mlp.up.in", m)
        u = m @ p[pre + "mlp.up.weight"] + p[pre + "mlp.up.bias"]
        rec(pre + "mlp.up.out", u)
        g = gelu(u)
        rec(pre + "mlp.down.in", g)
        y = g @ p[pre + "mlp.down.weight"] + p[pre + "mlp.down.bias"]
        rec(pre + "mlp.down.out", y)
        x = x + y
    f = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], cfg.ln_eps)
    rec("head.in", f)
    logits = f @ model.head_weight()
    return logits[0] if single else logits


def log_softmax(logits):
    """Log-probabilities along the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def bits_per_byte(logits, targets):
    """Mean negative log2-likelihood of byte ``targets`` under ``logits`` (..., vocab)."""
    lp = log_softmax(logits)
    targets = np.asarray(targets)
    picked = np.take_along_axis(lp, targets[..., None], axis=-1)[..., 0]
    return float(-picked.mean() / math.log(2))
