"""The limits in force for anonymous exports, as configured by the institution.

The defaults are the committee's (5 slices and fewer than 10 % of a series; aggregates over at
least 10 patients). A site may tighten them with a JSON object of the same keys, plus an optional
``purpose`` saying why (``--limits FILE`` on the command line,
``ORTHANC_GDPR_SERVICE_ANONYMITY_LIMITS`` for the service). Each export's decision record
carries the limits it ran under.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .refusal import Refused


@dataclass(frozen=True)
class Limits:
    #: Criterion 2: at most this many slices of one series.
    max_slices_per_series: int = 5
    #: Criterion 2: and strictly fewer than this share of the series' slices.
    max_series_fraction: float = 0.10
    #: Criterion 1: at least this many series, from at least this many distinct patients.
    min_aggregate_patients: int = 10

    def __post_init__(self) -> None:
        if self.max_slices_per_series < 1:
            raise Refused("limits", "bad-limits", "max_slices_per_series must be at least 1")
        if not 0 < self.max_series_fraction <= 0.5:
            raise Refused("limits", "bad-limits", "max_series_fraction must be in (0, 0.5]")
        if self.min_aggregate_patients < 2:
            raise Refused("limits", "bad-limits", "min_aggregate_patients must be at least 2")

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Limits":
        """The limits of ``path`` (a JSON object with any of the fields), else the defaults."""
        if path is None:
            return cls()
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise Refused("limits", "bad-limits", f"cannot read the limits file: {exc}") from None
        unknown = set(data) - set(cls.__dataclass_fields__) - {"purpose"}
        if unknown:
            raise Refused("limits", "bad-limits", f"unknown keys {sorted(unknown)}")
        return cls(**{k: v for k, v in data.items() if k != "purpose"})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def check_slice_count(self, asked: int, series_slices: int) -> None:
        """Refuse a selection of ``asked`` slices out of a series of ``series_slices``."""
        if asked >= series_slices:
            raise Refused("--slices", "whole-volume", f"{asked} slice(s) asked of a series of {series_slices}: "
                          "a whole volume is never anonymous (criterion 2)")
        if asked > self.max_slices_per_series:
            raise Refused("--slices", "max-slices", f"{asked} slices asked; the limit is "
                          f"{self.max_slices_per_series} slices per series (criterion 2: not whole volumes)")
        if asked >= self.max_series_fraction * series_slices:
            raise Refused("--slices", "max-fraction",
                          f"{asked} of {series_slices} slices is {100 * asked / series_slices:.1f} % of the series; "
                          f"the limit is fewer than {100 * self.max_series_fraction:g} % "
                          "(criterion 2: not whole volumes)")

    def check_aggregate(self, series: int, patients: int) -> None:
        k = self.min_aggregate_patients
        if patients < k or series < k:
            raise Refused("inputs", "min-patients", f"{series} series from {patients} distinct patient(s); "
                          f"an aggregate needs at least {k} series from at least {k} distinct patients "
                          "(criterion 1)")
