"""Armillary plugin: agents."""
