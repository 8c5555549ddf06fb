"""Errors caused by what the user asked for: the CLI prints them as one line and exits 2."""

from __future__ import annotations


class MplintError(Exception):
    """Bad input from the user (paths, options, configuration); its message is one line."""


class ConfigError(MplintError):
    """A configuration file or a selection option that mplint cannot honour."""


class MissingPathError(MplintError):
    """A path named on the command line does not exist."""


class InternalError(Exception):
    """A bug in mplint itself, while checking `path`: reported with the file named, exit 2."""

    def __init__(self, path: str, what: str, cause: BaseException) -> None:
        detail = (str(cause).strip().splitlines() or [""])[0][:200]  # a repr can run to pages
        super().__init__(f"{what} while checking {path}: {type(cause).__name__}: {detail}")
        self.path = path
        self.cause = cause
