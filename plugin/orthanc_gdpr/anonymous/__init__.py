"""Anonymous image data under the ethics committee's two criteria, with a decision record.

Pseudonymised DICOM is still personal data. The committee accepts image data as *anonymous* in
two cases only, and this package produces exactly those, refusing everything else:

* criterion 1, population aggregates (:mod:`.aggregate`): mean, median, standard-deviation
  images or a resampled template over at least k series from at least k distinct patients,
  written as PNG (2-D) or NIfTI (3-D) with nothing beyond geometry;
* criterion 2, individual slices (:mod:`.slices`): a few slices of one series, never a whole
  volume (:class:`~.limits.Limits`), each a PNG without any ancillary chunk, passing the
  burned-in text check, released only with a named clinician's statement that nothing rare or
  obvious singles the person out.

Each export builds its files in a private staging directory and moves it into place only when
every check passed (:mod:`.staging`); its :class:`~.decision.Decision` is what the audit chain
keeps. Plain Python (numpy, pydicom, Pillow, nibabel): nothing here imports ``orthanc``.
"""

from .decision import Decision
from .limits import Limits
from .refusal import Refused

__all__ = ["Decision", "Limits", "Refused"]
