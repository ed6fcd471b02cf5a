"""Exceptions for problems a user can fix; the CLI prints each as one line and exits non-zero."""

from __future__ import annotations


class TraderMLError(Exception):
    """Base class: the message alone must tell the user what is wrong and where."""

    exit_code = 2


class ValidationError(TraderMLError):
    """A data frame or file breaks the schema (column, dtype, NaN, duplicate, order)."""


class StoreError(TraderMLError):
    """A store could not be read or written."""


class NotFoundError(StoreError):
    """The key does not exist in the store."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the object exists already, or changed since it was read."""


class InsufficientHistory(TraderMLError):
    """Too few days to train, validate and test (or a window that never changes regime)."""


class SourceError(TraderMLError):
    """A market-data source could not deliver what was asked."""
