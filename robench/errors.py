"""Errors meant for the user: the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input (a file, a name, a value): message says what, where and what was expected."""
