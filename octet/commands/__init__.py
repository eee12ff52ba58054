"""Subcommands of the ``octet`` command line, one module each."""
