"""Armillary plugin: openai."""
