"""User-facing errors.

Anything a user can fix (a bad file, a missing package, a wrong option) is
raised as :class:`EditkitError`. The CLI prints its message on one line and
exits with code 2; ``EDITKIT_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations


class EditkitError(Exception):
    """An error the user can fix: the message says what, where, and how to fix it."""

    exit_code = 2


class InputError(EditkitError):
    """A malformed input file or argument."""


class ModelLoadError(EditkitError):
    """A model that cannot be found, installed or loaded as a causal LM."""
