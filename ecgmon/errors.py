"""Every error a user can cause, as one tree.

    EcgmonError                  base: the CLI prints ``Name: message`` and exits 1
    ├── ConfigError              a setting or option has a value that cannot work
    ├── ContractError            a message does not follow the wire contract
    ├── StackError               the embedded stack cannot start or answer
    │   ├── PortInUseError       a port is already taken
    │   └── BinaryMissingError   influxd or the broker binary is not installed
    ├── DataError                a dataset folder or record cannot be read
    ├── ModelError               unknown model name or unusable weights
    ├── SinkError                a write to InfluxDB failed (``retriable`` says if a retry can help)
    └── PushError                Grafana refused the dashboards, or could not be reached

Messages are full sentences that say what is wrong and what to try.
"""

from __future__ import annotations


class EcgmonError(Exception):
    """Base of every error a user can cause; never shown with a traceback."""


class ConfigError(EcgmonError):
    """A setting or command-line option has a value that cannot work."""


class ContractError(EcgmonError, ValueError):
    """A message does not follow the wire contract (see ``ecgmon.contracts``)."""


class StackError(EcgmonError):
    """The embedded broker or InfluxDB cannot be started, stopped or reached."""


class PortInUseError(StackError):
    """A port the embedded stack needs is already taken by another process."""


class BinaryMissingError(StackError):
    """A program the embedded stack runs is not installed."""


class DataError(EcgmonError):
    """A dataset folder or record is missing or not laid out as expected."""


class ModelError(EcgmonError):
    """A model name is unknown or its weights cannot be used."""


class SinkError(EcgmonError):
    """A write to InfluxDB failed; ``retriable`` tells the retry loop whether to try again."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class PushError(EcgmonError):
    """``ecgmon dashboards push`` failed: Grafana refused a request or could not be reached."""
