"""Logging of the CLI: hpoq's own loggers at ``--log-level``, every other library at WARNING, secrets masked.

``--log-level`` applies to the ``hpoq`` logger tree only. Third-party libraries stay at WARNING
unless ``--log-level-all`` is given: their DEBUG output can carry credentials (dwave-cloud-client
logs its whole configuration, API token included, as ``Config loaded: {... 'token': ...}``).

Every line hpoq writes is masked: the log handler carries :class:`RedactSecrets`, and the CLI
wraps ``sys.stdout`` and ``sys.stderr`` in :class:`MaskedStream` (so error lines, printed results,
tracebacks and anything a library prints pass the same filter). :func:`redact` replaces with ``***``

- the values hpoq knows are secret, whatever their shape (:func:`known_secrets`): environment
  variables whose names say they hold one (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``,
  ``*API_KEY*``), the secret keys of D-Wave's config files (``dwave.conf``: ``token`` and the like,
  :func:`dwave_config_secrets`), and values under secret keys of the study (``api_key: ...`` in a
  trainer's params; :func:`study_secrets`, registered with :func:`add_secrets` when a study is read);
- values of ``token`` / ``api_key`` / ``secret`` / ``password`` / ``authorization`` keys
  (``key: value``, ``key=value``, ``'key': 'value'``) and D-Wave style tokens (``ABC-`` followed
  by 16+ hex digits) wherever they appear.

Known values shorter than :data:`MIN_SECRET_LEN` characters are not masked (they would mask
ordinary words and numbers).
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


MIN_SECRET_LEN = 6
# words of a key name that say its value is a secret (study keys, config file keys)
_SECRET_WORDS = frozenset({"token", "secret", "password", "passwd", "apikey", "credential", "credentials"})
_REGISTERED: set[str] = set()  # secrets of the study (add_secrets)


def secret_env_values(environ=None) -> list[str]:
    """Values of environment variables named like secrets (6+ characters; shorter ones mask too much)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def is_secret_key(key) -> bool:
    """Does a key name say its value is a secret (``api_key``, ``auth_token``, ``db-password``; not ``tokenizer``)?"""
    name = str(key).lower().replace("-", "_")
    return "api_key" in name or bool(_SECRET_WORDS.intersection(name.split("_")))


def study_secrets(obj) -> list[str]:
    """The values (as text) under secret keys anywhere in a study mapping, lists and nested mappings included."""
    found: list[str] = []

    def walk(value, secret: bool) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, secret or is_secret_key(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, secret)
        elif secret and value is not None and not isinstance(value, bool):
            found.append(str(value))

    walk(obj, False)
    return [v for v in found if len(v) >= MIN_SECRET_LEN]


def add_secrets(values) -> None:
    """Mask these values from now on in every line hpoq writes (the study's secrets, once it is read)."""
    _REGISTERED.update(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LEN)


def dwave_config_paths(environ=None) -> list[str]:
    """Where dwave-cloud-client looks for ``dwave.conf`` (``DWAVE_CONFIG_FILE``, the XDG system and user
    folders, the current folder), whether or not the files exist."""
    env = os.environ if environ is None else environ
    paths = [env["DWAVE_CONFIG_FILE"]] if env.get("DWAVE_CONFIG_FILE") else []
    system = env.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    paths += [os.path.join(d, "dwave", "dwave.conf") for d in system.split(os.pathsep) if d]
    user = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    paths += [
        os.path.join(user, "dwave", "dwave.conf"),
        os.path.join(os.path.expanduser("~"), "Library", "Application Support", "dwave", "dwave.conf"),
        "dwave.conf",
    ]
    return paths


def dwave_config_secrets(environ=None) -> list[str]:
    """Values of secret keys (``token``, ...) in every D-Wave config file there is, whatever their shape."""
    import configparser

    found: list[str] = []
    for path in dwave_config_paths(environ):
        if not os.path.isfile(path):
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in [parser.defaults(), *(parser[name] for name in parser.sections())]:
            found += [v.strip() for k, v in section.items() if is_secret_key(k) and len(v.strip()) >= MIN_SECRET_LEN]
    return found


_config_cache: dict = {}


def known_secrets() -> list[str]:
    """Every value hpoq knows is secret (environment, D-Wave config files, the study), longest first."""
    key = tuple(dwave_config_paths())
    if key not in _config_cache:  # read once per process (and again if the places change)
        _config_cache.clear()
        _config_cache[key] = dwave_config_secrets()
    values = set(secret_env_values()) | set(_config_cache[key]) | _REGISTERED
    return sorted(values, key=len, reverse=True)


def redact(text: str, literals: list[str] | None = None) -> str:
    """``text`` with each known secret (``literals``, default :func:`known_secrets`) and token-like value masked."""
    for value in known_secrets() if literals is None else literals:
        text = text.replace(value, MASK)
    text = _KEYED.sub(lambda m: f"{m.group('key')}{m.group('q')}{MASK}", text)
    return _DWAVE_TOKEN.sub(MASK, text)


class MaskedStream:
    """``sys.stdout`` / ``sys.stderr`` with every write passed through :func:`redact` (the rest delegated)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text) if text else text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def mask_std_streams() -> tuple:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`MaskedStream` (once); the streams before."""
    before = (sys.stdout, sys.stderr)
    if not isinstance(sys.stdout, MaskedStream):
        sys.stdout = MaskedStream(sys.stdout)
    if not isinstance(sys.stderr, MaskedStream):
        sys.stderr = MaskedStream(sys.stderr)
    return before


class RedactSecrets(logging.Filter):
    """A handler filter: formats the record's message (and traceback) and masks secrets in it.

    ``literals``: the values to mask; default (None) every value :func:`known_secrets` knows at the time.
    """

    def __init__(self, literals: list[str] | None = None):
        super().__init__()
        self.literals = None if literals is None else list(literals)

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
