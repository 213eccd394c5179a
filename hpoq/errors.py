"""Errors that reach the user as one line and exit code 2."""


class HpoqError(Exception):
    """Bad input or an unusable environment: the message names the problem in one line.

    The CLI prints ``hpoq: error: <message>`` and exits with code 2; no traceback.
    """
