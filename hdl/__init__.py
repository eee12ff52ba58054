"""Octet hdl package."""
