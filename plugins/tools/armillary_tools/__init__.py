"""Armillary plugin: tools."""
