"""Faust's worker without its terminal spinner, which costs the event loop a log record per debug call.

faust-streaming 0.15 always builds a spinner and, to make it spin on every log message, sets the
root logger to DEBUG (``faust.Worker._setup_spinner_handler``) while the console handler keeps the
chosen level. Every ``logger.debug`` in Faust and aiokafka (one per record sent, one per frame
received) then builds a ``LogRecord`` that no handler prints: 7 % of the worker's event-loop time at
saturation in the py-spy profile of BENCHMARKS.md. Without the spinner the root logger keeps the
worker's own level (``ECGMON_LOG_LEVEL``), so those calls return at once.
"""

from __future__ import annotations

from typing import Any

import faust


class Worker(faust.Worker):
    """``faust.Worker`` with no spinner; logging is exactly the chosen level."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None
