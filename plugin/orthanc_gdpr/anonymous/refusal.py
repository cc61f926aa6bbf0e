"""The one error of anonymous exports: a refusal that names the field and the rule it broke."""

from __future__ import annotations


class Refused(ValueError):
    """The export is refused; nothing was written.

    ``field`` is the option or input at fault (``--slices``, ``--clinician``, ``inputs``...),
    ``rule`` a short identifier of the rule (``max-slices``, ``burned-in-text``...). The message
    never carries a patient's value: slice numbers, counts and limits only.
    """

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.rule, self.message = field, rule, message

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "detail": self.message}
