"""Reassembly stage: TCP segments of one direction in, stream bytes and gaps out (`tcp.py`)."""
