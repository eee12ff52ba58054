"""Train the byte-level transformer on the standard-library corpus and write the model file.

``python -m octet.quant.train`` retrains the shipped model from scratch in one command (CPU,
deterministic for a given seed, thread count and torch build). It needs PyTorch, which is the
optional ``train`` extra (``pip install -e '.[train]'``); nothing else in Octet imports torch.

The torch module implements exactly the architecture of :mod:`octet.quant.model` with the same
parameter names and (in, out) weight layout, so export is a plain copy. After training the
script checks that the NumPy fp32 forward pass reproduces torch's logits, measures bits per
byte on the evaluation windows of the held-out split, and writes both into the file's
metadata.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import corpus
from .model import Model, ModelConfig, bits_per_byte, init_params, param_shapes
from .model_file import DEFAULT_MODEL, save_model

__all__ = ["main", "build_parser", "train"]


def _import_torch():
    try:
        import torch
    except ImportError:
        raise SystemExit(
            "octet.quant.train needs PyTorch, which is not installed. Install the optional "
            "training extra: pip install -e '.[train]' (CPU build is enough)") from None
    return torch


def build_parser():
    d = ModelConfig()
    p = argparse.ArgumentParser(
        prog="python -m octet.quant.train",
        description="Train the byte-level GPT-2-style transformer on the Python standard "
                    "library's source (training split) with PyTorch on the CPU, then write it "
                    "as an Octet model file. Needs the optional 'train' extra (torch).")
    p.add_argument("-o", "--output", type=Path, default=DEFAULT_MODEL, metavar="FILE.octm",
                   help=f"where to write the model (default {DEFAULT_MODEL})")
    p.add_argument("--steps", type=int, default=1100, help="optimizer steps (default 1100)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per step (default 16)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps (default 100)")
    p.add_argument("--weight-decay", type=float, default=0.1,
                   help="AdamW weight decay of the matrices (default 0.1)")
    p.add_argument("--seed", type=int, default=1, help="seed of init and batches (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop early after this many minutes of training (the file records "
                        "the steps actually run)")
    p.add_argument("--log-every", type=int, default=100, help="print every N steps")
    for name in ("context", "d_model", "n_layer", "n_head", "d_ff"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name),
                       help=f"model {name} (default {getattr(d, name)})")
    p.add_argument("--untied", action="store_true",
                   help="give the LM head its own weights instead of the token embedding")
    return p


def _torch_module(torch, config, params):
    """The model as a torch.nn.Module with parameters named and laid out like the NumPy ones."""
    nn = torch.nn
    f = torch.nn.functional

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(torch.from_numpy(v))
                                       for k, v in params.items()})

        def w(self, name):
            return self.p[name.replace(".", "__")]

        def forward(self, idx):
            b, t = idx.shape
            h, hd, d = config.n_head, config.head_dim, config.d_model
            x = self.w("tok_emb")[idx] + self.w("pos_emb")[:t]
            for i in range(config.n_layer):
                pre = f"blocks.{i}."
                a = f.layer_norm(x, (d,), self.w(pre + "ln1.weight"), self.w(pre + "ln1.bias"),
                                 config.ln_eps)
                qkv = a @ self.w(pre + "attn.qkv.weight") + self.w(pre + "attn.qkv.bias")
                q, k, v = (qkv[..., j * d:(j + 1) * d].view(b, t, h, hd).transpose(1, 2)
                           for j in range(3))
                o = f.scaled_dot_product_attention(q, k, v, is_causal=True)
                o = o.transpose(1, 2).reshape(b, t, d)
                x = x + o @ self.w(pre + "attn.out.weight") + self.w(pre + "attn.out.bias")
                m = f.layer_norm(x, (d,), self.w(pre + "ln2.weight"), self.w(pre + "ln2.bias"),
                                 config.ln_eps)
                u = f.gelu(m @ self.w(pre + "mlp.up.weight") + self.w(pre + "mlp.up.bias"),
                           approximate="tanh")
                x = x + u @ self.w(pre + "mlp.down.weight") + self.w(pre + "mlp.down.bias")
            x = f.layer_norm(x, (d,), self.w("ln_f.weight"), self.w("ln_f.bias"), config.ln_eps)
            head = (self.w("tok_emb").t() if config.tie_embeddings else self.w("head.weight"))
            return x @ head

    return GPT()


def train(config, args, log=print, argv=None):
    """Train and return the :class:`Model` (with training metadata)."""
    torch = _import_torch()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_data = np.frombuffer(corpus.load_split("train"), dtype=np.uint8)
    heldout = corpus.fixed_windows(corpus.load_split("heldout"), 32, config.context)
    params = init_params(config, seed=args.seed)
    net = _torch_module(torch, config, params)
    decay = [p for n, p in net.p.items() if n.endswith("weight") and p.ndim == 2]
    decay_ids = {id(p) for p in decay}
    no_decay = [p for p in net.parameters() if id(p) not in decay_ids]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(args.seed)
    n = config.context + 1
    start = time.monotonic()
    losses = []
    step = 0
    for step in range(1, args.steps + 1):
        if step <= args.warmup:
            lr = args.lr * step / args.warmup
        else:  # cosine to 10% of the peak
            frac = (step - args.warmup) / max(args.steps - args.warmup, 1)
            lr = args.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = lr
        offsets = rng.integers(0, len(train_data) - n, args.batch_size)
        batch = torch.from_numpy(np.stack([train_data[o:o + n] for o in offsets]).astype(np.int64))
        logits = net(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, config.vocab_size),
                                                 batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        elapsed = time.monotonic() - start
        if step % args.log_every == 0 or step == args.steps:
            recent = float(np.mean(losses[-args.log_every:]))
            log(f"step {step}/{args.steps}  loss {recent:.4f} nats  "
                f"({recent / math.log(2):.3f} bits/byte)  lr {lr:.2e}  {elapsed / 60:.1f} min")
        if args.max_minutes is not None and elapsed > args.max_minutes * 60:
            log(f"stopping after {step} steps: --max-minutes {args.max_minutes} reached")
            break
    train_minutes = (time.monotonic() - start) / 60

    exported = {name: net.w(name).detach().numpy().astype(np.float32).copy()
                for name in param_shapes(config)}
    with torch.no_grad():
        ref = net(torch.from_numpy(heldout[:4, :-1].astype(np.int64))).numpy()
    model = Model(config, exported)
    ours = model.forward(heldout[:4, :-1])
    diff = float(np.abs(ours - ref).max())
    if diff > 1e-3:
        raise RuntimeError(f"NumPy forward pass differs from torch by {diff:.2e}")
    heldout_bpb = bits_per_byte(model.forward(heldout[:, :-1]), heldout[:, 1:])
    final = float(np.mean(losses[-args.log_every:]))
    model.metadata = {
        "name": "octet-demo-v1",
        "trainer": " ".join(["python -m octet.quant.train", *(argv or sys.argv[1:])]),
        "torch": torch.__version__, "python": sys.version.split()[0],
        "steps": step, "planned_steps": args.steps, "batch_size": args.batch_size,
        "lr": args.lr, "warmup": args.warmup,
        "weight_decay": args.weight_decay, "seed": args.seed, "threads": args.threads,
        "train_minutes": round(train_minutes, 2),
        "train_bytes_seen": step * args.batch_size * config.context,
        "train_split_bytes": int(len(train_data)),
        "final_train_loss_nats": round(final, 4),
        "heldout_bits_per_byte_32x256": round(heldout_bpb, 4),
        "numpy_vs_torch_max_abs_diff": diff,
        "corpus": "CPython stdlib .py files (octet.quant.corpus), split 'train'",
    }
    log(f"trained {step} steps in {train_minutes:.1f} min; final train loss {final:.4f} nats; "
        f"held-out {heldout_bpb:.4f} bits/byte; NumPy vs torch max |diff| {diff:.1e}")
    return model


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = ModelConfig(context=args.context, d_model=args.d_model, n_layer=args.n_layer,
                         n_head=args.n_head, d_ff=args.d_ff, tie_embeddings=not args.untied)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    log(f"training {config} on {args.threads} thread(s)")
    model = train(config, args, log, argv)
    save_model(model, args.output)
    log(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB, "
        f"{model.num_params} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
