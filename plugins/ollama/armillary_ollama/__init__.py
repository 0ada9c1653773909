"""Armillary plugin: ollama."""
