"""What the command line prints as one line, without a traceback."""

from __future__ import annotations


class UsageError(Exception):
    """A problem with what the user asked for or gave us (a file, the database); the message
    names it. The command line prints it and exits with status 2."""
