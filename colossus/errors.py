"""The one error type the command line turns into a clear message (no traceback)."""


class ColossusError(Exception):
    """A problem the user can fix: the message says what to fix."""
