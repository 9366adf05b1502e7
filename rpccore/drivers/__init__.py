"""Drivers built into the core distribution (only ``memory``)."""
