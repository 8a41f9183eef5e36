"""Errors that hubcli reports to users as one line.

Every failure a user can cause or meet (a bad handle, a truncated download, a
corrupt image) is raised as a :class:`HubcliError`. The CLI prints its message
on one stderr line and exits with its ``exit_code``; library callers can catch
the specific subclass.

Example:
    >>> try:
    ...     raise NotFoundError("unknown alias 'mobilnet_v2'; did you mean mobilenet_v2?")
    ... except HubcliError as err:
    ...     print(err.exit_code, err)
    3 unknown alias 'mobilnet_v2'; did you mean mobilenet_v2?
"""

from __future__ import annotations


class HubcliError(Exception):
    """Base class: a message meant for the user, and the process exit code."""

    exit_code = 1

    def __init__(self, message: str):
        # One line only: scripts grep stderr, and a traceback-like dump helps no one.
        super().__init__(" ".join(str(message).split()))


class UsageError(HubcliError):
    """The command line or a config file asks for something inconsistent."""

    exit_code = 2


class NotFoundError(HubcliError):
    """A handle, alias, file, run or cache entry does not exist."""

    exit_code = 3


class NetworkError(HubcliError):
    """The network failed after all retries, or is forbidden (offline mode)."""

    exit_code = 4


class IntegrityError(HubcliError):
    """Content does not match its pinned or recorded sha256, or is damaged."""

    exit_code = 5


class UnsafeContentError(HubcliError):
    """An archive or module does something we refuse to accept (path escape, device files...)."""

    exit_code = 6


class InvalidModuleError(HubcliError):
    """The content is not a usable module: no SavedModel, wrong signature, unknown shape."""

    exit_code = 7


class DataError(HubcliError):
    """The user's dataset cannot be used as given (one class, empty, bad encoding...)."""

    exit_code = 8


class ExportError(HubcliError):
    """An export failed or its artifact disagrees with the original model."""

    exit_code = 9


class QualityGateError(HubcliError):
    """A finished run scored below its ``--min-accuracy`` or ``--min-micro-f1``; the run is kept."""

    exit_code = 10
