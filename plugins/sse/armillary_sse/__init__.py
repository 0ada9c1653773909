"""Armillary plugin: sse."""
