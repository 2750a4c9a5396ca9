"""Decode stage: captured frames in, IP packets out (`decoder.py`; `packet.py` is the value)."""
