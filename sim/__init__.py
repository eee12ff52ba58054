"""Octet sim package."""
