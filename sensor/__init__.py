"""Sluice sensor: decode -> flows -> reassembly -> protocols -> content -> outputs."""
