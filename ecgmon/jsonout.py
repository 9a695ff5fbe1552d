"""Reports as JSON: printed for the person at the terminal and, when asked, written for the next tool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def print_and_write(result: Any, path: Path | None, *, indent: int = 2) -> str:
    """Print ``result`` as JSON and write the same text to ``path`` (its folders made) when one is given."""
    text = json.dumps(result, indent=indent)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return text
