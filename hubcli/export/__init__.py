"""Artifacts made from a run: SavedModel, ``.keras``, TFLite, and hub modules for publishing."""
