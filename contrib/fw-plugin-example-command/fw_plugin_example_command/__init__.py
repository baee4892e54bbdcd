"""Adds ``fw hello`` to the fw command line."""
