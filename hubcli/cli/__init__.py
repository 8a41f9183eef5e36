"""The ``hubcli`` command: parses arguments, calls the library and renders what it returns."""

from hubcli.cli.app import main

__all__ = ["main"]
