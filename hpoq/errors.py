"""The two kinds of error: bad input (:class:`ConfigError`) and a broken internal contract (:class:`InternalError`)."""


class ConfigError(Exception):
    """Bad input or an unusable environment: the message names the problem in one line.

    The CLI prints ``hpoq: error: <message>`` and exits with code 2; no traceback.
    """


#: the old name of :class:`ConfigError`, kept while other branches still use it
HpoqError = ConfigError


class InternalError(RuntimeError):
    """A broken internal contract: a bug in hpoq (or in a plugin), not in the user's input.

    The CLI lets it propagate with its traceback and exits with code 1; the runtime never treats it
    as the failure of one unit.
    """
