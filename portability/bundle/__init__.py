"""The patient's portability bundle: DICOM File-set (IHE PDI) + FHIR + INDEX.HTM + checksums."""
from .builder import BundleError, BundleResult, DiskFull, build_bundle
from .importer import ImportError_, import_bundle, verify_bundle

__all__ = ["BundleError", "BundleResult", "DiskFull", "build_bundle", "ImportError_", "import_bundle",
           "verify_bundle"]
