"""Octet's transformer: a small byte-level GPT-2-style model, its W8A8 quantization and pruning,
and an integer reference forward pass that runs every matrix product as an accelerator GEMM.

Modules: :mod:`.model` (fp32 NumPy reference), :mod:`.corpus` (standard-library text),
:mod:`.train` (torch retraining, optional), :mod:`.model_file` (the ``.octm`` format),
:mod:`.quantize`, :mod:`.host_ops`, :mod:`.integer_reference`, :mod:`.prune`,
:mod:`.evaluate`. ``docs/model.md`` describes them.
"""
