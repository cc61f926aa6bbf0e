"""Machine-readable facts from DICOM PS3.15 Annex E (see README.md in this folder)."""

import json
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent


@cache
def load(name: str) -> Any:
    """Return the parsed JSON data file ``name`` from this folder."""
    with open(DATA_DIR / name, encoding="utf-8") as f:
        return json.load(f)
