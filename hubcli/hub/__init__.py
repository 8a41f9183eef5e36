"""The hub client: handles, catalog, registries, downloads, safe extraction, the module cache.

Nothing in this package imports TensorFlow (``tests/test_layout.py`` walks it to check), so
``pull``, ``cache``, ``list`` and ``search`` start in a fraction of a second.
"""
