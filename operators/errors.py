"""The root of Eyes' own errors; the command line turns each into a message and an exit code.

```
EyesError                 exit 1 unless a subclass says otherwise
  ConfigError             exit 2: a configuration key is unknown, of the wrong type or out of range
  InputFileError          exit 2: a file named on the command line cannot be read or written
  EventError              a trace line that is not an event (operators.events); skipped and counted
```
"""

from __future__ import annotations

__all__ = ["ConfigError", "EyesError", "InputFileError"]


class EyesError(Exception):
    """Base class of the errors Eyes raises on purpose; `exit_code` is what the CLI returns."""

    exit_code = 1


class ConfigError(EyesError):
    """The configuration is invalid; the message names the key and the value."""

    exit_code = 2


class InputFileError(EyesError):
    """A file named on the command line cannot be read (or, for an output, written); the
    message names it."""

    exit_code = 2
