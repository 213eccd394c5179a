"""The two kinds of error: bad input (:class:`ConfigError`) and a broken internal contract (:class:`InternalError`).

- :class:`ConfigError`: the user's input (study file, command line, data files, environment)
  cannot work. The message names the problem in one line; the CLI prints it and exits 2.
- :class:`InternalError`: hpoq (or a plugin) broke one of its own contracts -- a scheduler told of
  a unit it never dispatched, a predictor asked before it was fitted, energy not conserved. That
  is a bug: it keeps its traceback and exits 1, and the runtime never treats it as the failure of
  one unit or as a configuration error.
"""


class ConfigError(Exception):
    """Bad input or an unusable environment: the message names the problem in one line.

    The CLI prints ``hpoq: error: <message>`` and exits with code 2; no traceback.
    """


class InternalError(RuntimeError):
    """A broken internal contract: a bug in hpoq (or in a plugin), not in the user's input.

    The CLI lets it propagate with its traceback and exits with code 1.
    """


class DeadlockError(InternalError):
    """A backend found nothing in flight, no work suggested and the scheduler not finished.

    Raised by the MPI master and by the replay simulator alike: a scheduler must never stall a
    backend (see :class:`hpoq.schedulers.base.Scheduler`).
    """
