"""Subcommands of ``python -m hpoq.main``: one module each, discovered by :mod:`hpoq.main`."""
