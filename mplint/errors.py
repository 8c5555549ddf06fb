"""Errors caused by what the user asked for: the CLI prints them as one line and exits 2."""

from __future__ import annotations


class MplintError(Exception):
    """Bad input from the user (paths, options, configuration); its message is one line."""


class ConfigError(MplintError):
    """A configuration file or a selection option that mplint cannot honour."""


class MissingPathError(MplintError):
    """A path named on the command line does not exist."""
