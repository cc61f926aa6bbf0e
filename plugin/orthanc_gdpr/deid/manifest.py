"""The manifest of a release: what exactly leaves, as SHA-256 digests of the de-identified files.

A reviewer approves a study as it was de-identified at review time. At send time the plugin
de-identifies the stored study again with the same key and profile and compares manifests: any
change to the stored study (an instance added, removed or edited) gives another manifest hash,
and the release no longer applies.

Entries are kept in the order of the Orthanc instance IDs (stable for the same stored DICOM), so
the service and the plugin arrive at the same hash independently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

MANIFEST_VERSION = 1


@dataclass
class Manifest:
    """Add every de-identified file (any order); read :attr:`hash` and :attr:`count`."""

    entries: dict[str, str] = field(default_factory=dict)  #: Orthanc instance ID -> SHA-256 of the file
    dropped: list[str] = field(default_factory=list)  #: left out by policy (report-bearing objects)

    def add(self, instance_id: str, data: bytes | memoryview) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.entries[instance_id] = digest
        return digest

    def drop(self, instance_id: str) -> None:
        self.dropped.append(instance_id)

    @property
    def count(self) -> int:
        return len(self.entries)

    def ordered(self) -> list[tuple[str, str]]:
        return sorted(self.entries.items())

    @property
    def hash(self) -> str:
        """SHA-256 over the versioned list of (instance, file digest) lines, in instance order,
        plus the instances dropped by policy."""
        h = hashlib.sha256(f"orthanc-gdpr manifest v{MANIFEST_VERSION}\n".encode())
        for instance, digest in self.ordered():
            h.update(f"{instance} {digest}\n".encode())
        for instance in sorted(self.dropped):
            h.update(f"{instance} dropped\n".encode())
        return h.hexdigest()
