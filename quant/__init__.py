"""Octet quant package."""
