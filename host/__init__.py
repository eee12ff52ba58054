"""Octet host package."""
