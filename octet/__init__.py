"""Octet: an open generator of int8 neural accelerators for FPGAs."""

__version__ = "0.1.0"
__all__ = ["__version__"]
