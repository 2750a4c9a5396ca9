"""Capture side of Sluice: probes turn a packet source into `Frame`s and know nothing of flows."""
