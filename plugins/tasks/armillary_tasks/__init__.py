"""Armillary plugin: tasks."""
