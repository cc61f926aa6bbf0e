"""The de-identification engine: DICOM PS3.15 Annex E, plain Python and pydicom.

Nothing here imports ``orthanc``: the engine runs the same inside the Orthanc plugin, in the
local command line and in tests.
"""

from .engine import DeidentificationError, Deidentifier, InstanceDropped
from .files import deidentify_bytes, deidentify_tree, encode, read
from .keys import KeyFileError, Keyring, create_key_file, load_key
from .options import UnknownOptionError
from .profile import Profile, ProfileError, available, load_profile
from .report import InstanceReport, RunReport

__all__ = [
    "DeidentificationError", "Deidentifier", "InstanceDropped", "InstanceReport", "KeyFileError", "Keyring", "Profile",
    "ProfileError", "RunReport", "UnknownOptionError", "available", "create_key_file",
    "deidentify_bytes", "deidentify_tree", "encode", "load_key", "load_profile", "read",
]
