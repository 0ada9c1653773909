"""Armillary plugin: chat."""
