"""orthanc-gdpr: GDPR tooling for medical imaging inside Orthanc."""

__version__ = "0.1.0"
