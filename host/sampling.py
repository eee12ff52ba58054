"""Choosing the next byte from the logits: greedy, or sampled with temperature and top-k.

:class:`Sampler` is deterministic: greedy decoding (temperature 0) takes the first maximum,
sampling draws from a seeded ``numpy.random.Generator``, so the same seed gives the same text
on every backend. Without top-k its arithmetic is exactly
:meth:`octet.quant.integer_reference.IntegerTransformer.generate`'s. Tested by
``tests/test_runtime.py``.
"""

import math

import numpy as np

__all__ = ["Sampler", "SamplingError"]


class SamplingError(ValueError):
    """Bad sampling parameters (negative temperature, top-k that is not a count)."""


class Sampler:
    """Picks token ids from real-valued logits.

    Parameters
    ----------
    temperature : float
        0 for greedy decoding, else the softmax temperature (> 0, finite).
    top_k : int
        Sample only among the ``top_k`` largest logits (0: all of them; ties keep the lower
        index). Ignored by greedy decoding.
    seed : int
        Seed of the random generator (sampling only).
    """

    def __init__(self, temperature=0.0, top_k=0, seed=0):
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not math.isfinite(temperature) or temperature < 0:
            raise SamplingError(f"temperature must be a finite number >= 0, not "
                                f"{temperature!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise SamplingError(f"top_k must be an integer >= 0, not {top_k!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SamplingError(f"seed must be an integer >= 0, not {seed!r}")
        self.temperature = float(temperature)
        self.top_k = top_k
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def __call__(self, logits):
        """The next token id for float logits (vocab,)."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.temperature == 0:
            return int(np.argmax(logits))
        z = logits / self.temperature
        if 0 < self.top_k < len(z):
            keep = np.argsort(-z, kind="stable")[:self.top_k]
            masked = np.full_like(z, -np.inf)
            masked[keep] = z[keep]
            z = masked
        prob = np.exp(z - z.max())
        return int(self._rng.choice(len(prob), p=prob / prob.sum()))

    def describe(self):
        """One line: "greedy" or "temperature T, top-k K, seed S"."""
        if self.temperature == 0:
            return "greedy"
        k = f"top-k {self.top_k}" if self.top_k else "no top-k"
        return f"temperature {self.temperature:g}, {k}, seed {self.seed}"
