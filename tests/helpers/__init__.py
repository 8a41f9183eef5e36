"""Test helpers: tiny real modules, a local hub server, synthetic data, CLI runners."""
