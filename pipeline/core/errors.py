"""Exceptions the library raises for problems a user can fix (bad input, bad config)."""

from __future__ import annotations


class PipelineError(Exception):
    """A user-facing error: the message names the file, line or config key at fault.

    Stage entry points turn it into ``error: <message>`` on stderr and exit status 1,
    without a traceback.
    """


class ConfigError(PipelineError):
    """A config section does not validate (unknown key, wrong type, value out of range)."""


class DataError(PipelineError):
    """An input file is missing, empty, undecodable or malformed."""


class ChecksumError(DataError):
    """A downloaded or local archive does not match its declared sha256."""


class UnsafeArchiveError(DataError):
    """An archive member would land outside its destination (absolute, '..', link)."""


class TrainingDivergedError(PipelineError):
    """A loss became NaN or infinite during training."""
