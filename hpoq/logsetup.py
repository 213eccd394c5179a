"""Logging of the CLI: hpoq's own loggers at ``--log-level``, every other library at WARNING, secrets masked.

``--log-level`` applies to the ``hpoq`` logger tree only. Third-party libraries stay at WARNING
unless ``--log-level-all`` is given: their DEBUG output can carry credentials (dwave-cloud-client
logs its whole configuration, API token included, as ``Config loaded: {... 'token': ...}``).

Every handler hpoq installs carries :class:`RedactSecrets`, which masks token-like values in the
formatted message and in tracebacks: values of ``token`` / ``api_key`` / ``secret`` /
``password`` / ``authorization`` keys (``key: value``, ``key=value``, ``'key': 'value'``),
D-Wave style tokens (``ABC-`` followed by 16+ hex digits), and the literal values of environment
variables whose names say they hold a secret (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``,
``*API_KEY*``).
"""

from __future__ import annotations

import logging
import os
import re
import sys

MASK = "***"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_TAG = "_hpoq_handler"

# key = value, key: value, 'key': 'value', "key": "value", Bearer tokens
_SECRET_KEYS = r"(?:[A-Za-z_]*token|api[_-]?key|secret|password|passwd|authorization|x-auth-token)"
_KEYED = re.compile(
    rf"(?P<key>['\"]?\b{_SECRET_KEYS}['\"]?\s*[:=]\s*)(?P<q>['\"]?)(?P<value>(?:Bearer\s+)?[^\s'\",}}\]]+)",
    re.IGNORECASE,
)
_DWAVE_TOKEN = re.compile(r"\b[A-Za-z]{2,5}-[0-9a-fA-F]{16,}\b")
_SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY", re.IGNORECASE)


def secret_env_values(environ=None) -> list[str]:
    """Values of environment variables named like secrets (6+ characters; shorter ones mask too much)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= 6}
    return sorted(values, key=len, reverse=True)


def redact(text: str, literals: list[str] = ()) -> str:
    """``text`` with every token-like value replaced by ``***``."""
    for value in literals:
        text = text.replace(value, MASK)
    text = _KEYED.sub(lambda m: f"{m.group('key')}{m.group('q')}{MASK}", text)
    return _DWAVE_TOKEN.sub(MASK, text)


class RedactSecrets(logging.Filter):
    """A handler filter: formats the record's message (and traceback) and masks secrets in it."""

    def __init__(self, literals: list[str] | None = None):
        super().__init__()
        self.literals = secret_env_values() if literals is None else list(literals)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 -- a bad format string: let the handler report it as usual
            return True
        record.msg, record.args = redact(message, self.literals), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.literals)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.literals)
        return True


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (never to a stream closed since)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property always follows sys.stderr
        pass


class HpoqBelowWarning(logging.Filter):
    """Passes records of the ``hpoq`` logger tree at any level, other libraries' only from WARNING up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name == "hpoq" or record.name.startswith("hpoq.")


def configure_logging(level: str = "WARNING", all_loggers: bool = False, stream=None) -> logging.Handler:
    """Install hpoq's one stderr handler on the root logger (replacing one installed before).

    The root logger gets ``level``; the handler passes other libraries' records below WARNING only
    with ``all_loggers`` (the loggers' own levels are left alone, so in-process callers and tests
    keep theirs). Every record is redacted. Returns the handler.
    """
    numeric = getattr(logging, str(level).upper(), logging.WARNING)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_TAG, False)]:
        root.removeHandler(old)
    handler = StderrHandler() if stream is None else logging.StreamHandler(stream)
    setattr(handler, _HANDLER_TAG, True)
    handler.setFormatter(logging.Formatter(FORMAT))
    if not all_loggers:
        handler.addFilter(HpoqBelowWarning())
    handler.addFilter(RedactSecrets())
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler
