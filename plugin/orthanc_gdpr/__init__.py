"""orthanc-gdpr: GDPR tooling for medical imaging inside Orthanc."""

from pathlib import Path

__version__ = "0.1.0"

#: The shipped configuration: Orthanc templates, profiles, pixel mask rules. In a checkout it is
#: the repository's ``orthanc-config/`` (``orthanc_config`` links to it); a wheel carries a copy.
CONFIG_DIR = Path(__file__).resolve().parent / "orthanc_config"
