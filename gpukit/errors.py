"""The gpukit exception hierarchy.

Every error gpukit raises on purpose derives from :class:`GpukitError`, so a
batch driver can catch exactly gpukit's own failures. Errors about a file name
that file (``.path``) and say what was wrong with it. Bad values derive from
``ValueError``; a missing package or device derives from :class:`EnvironmentProblem`
(a ``RuntimeError``), so callers can tell "your data is wrong" from "your
machine lacks something".
"""

from __future__ import annotations

import os
from typing import Iterable


class GpukitError(Exception):
    """Root of every error gpukit raises on purpose."""

    def __init__(self, message: str, path: "str | os.PathLike | None" = None):
        self.path = None if path is None else os.fspath(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)

    def __reduce__(self):
        # picklable with every attribute (errors cross process and Dask worker boundaries)
        return (_rebuild_error, (type(self), str(self), dict(self.__dict__)))


def _rebuild_error(cls, text, state):
    obj = cls.__new__(cls)
    Exception.__init__(obj, text)
    obj.__dict__.update(state)
    return obj


# -- bad input files --------------------------------------------------------
class DicomFileError(GpukitError, ValueError):
    """A file could not be used as DICOM (base of the per-file errors)."""


class NotDicomError(DicomFileError):
    """The file is not DICOM at all (no preamble/DICM and no parseable dataset)."""


class CorruptDicomError(DicomFileError):
    """The file starts as DICOM but is truncated or malformed."""


class NoPixelDataError(DicomFileError):
    """The dataset has no Pixel Data (a report, a DICOMDIR, a presentation state...)."""


class UnsupportedDicomError(DicomFileError):
    """Valid DICOM that gpukit does not turn into a volume (RGB, no geometry, ...)."""


class DecodeError(DicomFileError):
    """A decoder was available but failed on this file's pixel data."""


class NotRegularFileError(DicomFileError):
    """A FIFO (named pipe), socket, device or other non-regular file: never opened, skipped by scan."""


class InputNotFoundError(GpukitError, FileNotFoundError):
    """An input path does not exist (also a ``FileNotFoundError``); names the path."""

    def __init__(self, message: str = "no such file or directory", path=None):
        GpukitError.__init__(self, message, path)
        self.errno, self.strerror, self.filename = 2, message, self.path    # 2: ENOENT

    def __str__(self) -> str:
        return Exception.__str__(self)


# -- series-level problems ---------------------------------------------------
class SeriesError(GpukitError, ValueError):
    """Base of the errors about a series as a whole."""


class SeriesNotFoundError(SeriesError):
    """No volume series under a path, or none matching the requested one."""


class AmbiguousSeriesError(SeriesError):
    """Several volume series were found and none was chosen; lists them."""

    def __init__(self, message: str, series: Iterable = (), path=None):
        self.series = list(series)
        super().__init__(message, path)


class InconsistentSeriesError(SeriesError):
    """Images of one series disagree (matrix, orientation, pixel format, ...)."""


class IrregularSpacingError(SeriesError):
    """Slice positions are not uniformly spaced (missing slice, duplicates, gaps).

    ``positions`` holds the offsets of every slice along the normal (mm) and
    ``report`` the :class:`gpukit.geometry.SpacingReport`.
    """

    def __init__(self, message: str, positions=None, report=None, path=None):
        self.positions = positions
        self.report = report
        super().__init__(message, path)


# -- bad arguments to operations ----------------------------------------------------------
class InvalidParameterError(GpukitError, ValueError):
    """A value given to an operation that it cannot use (a zero normal, a negative spacing, ...); says which."""


class ParameterTypeError(GpukitError, TypeError):
    """An argument of the wrong type (the message says what to pass instead)."""


class WorkLimitError(InvalidParameterError):
    """An operation would take more samples or a larger output than the stated limit (raised before any
    allocation; the message gives the size, the limit and how to raise it)."""


class NoWindowError(GpukitError, ValueError):
    """A window was needed, but none was given and the image carries none."""


class WindowParameterError(GpukitError, ValueError):
    """A window or rescale parameter has a value DICOM or gpukit does not allow (the message says which)."""


class UnknownPresetError(GpukitError, ValueError):
    """A window preset name gpukit does not know; the message lists the known ones."""


# -- outputs -----------------------------------------------------------------------
class UnsafeOutputPathError(GpukitError, ValueError):
    """An output path would land outside its output root (a ``..``, an absolute path, or a symlink leading out)."""


class OutputWriteError(GpukitError, OSError):
    """An output (a batch file or the manifest) could not be written: the disk is full or read-only, or the
    folder is not writable. Names the file; ``os_errno`` (also ``errno``) is the operating system's code."""

    def __init__(self, message: str, path=None, errno_: int | None = None):
        super().__init__(message, path)
        self.os_errno = self.errno = errno_

    def __reduce__(self):
        # errno lives in OSError's own slots, not __dict__: carry it across processes (Dask workers)
        fn, args = super().__reduce__()
        return (_rebuild_output_error, args)


def _rebuild_output_error(cls, text, state):
    obj = _rebuild_error(cls, text, state)
    obj.errno = state.get("os_errno")
    return obj


# -- backends ----------------------------------------------------------------------
class UnknownBackendError(GpukitError, ValueError):
    """A backend name that is not registered (the message lists the known ones)."""


class CapabilityError(GpukitError, ValueError):
    """An operation needs a capability the chosen backend does not have (the message names both)."""


# -- DICOMweb (a PACS over HTTP) -----------------------------------------------------------
class DicomWebError(GpukitError, RuntimeError):
    """A DICOMweb server could not be reached or answered with an error (after the retries). ``path`` is the
    URL asked, without credentials; ``status`` the HTTP status when there was one. Never carries a password or
    a token."""

    def __init__(self, message: str, path=None, status: int | None = None):
        super().__init__(message, path)
        self.status = status


class DicomWebAuthError(DicomWebError):
    """The DICOMweb server refused the credentials (HTTP 401 or 403), or none were given where some are
    needed. Says where credentials come from; never shows them."""


class TruncatedResponseError(DicomWebError):
    """A DICOMweb answer ended before its declared length (a cut connection, a damaged multipart body, an
    instance shorter than its own Pixel Data): nothing of it is used or cached. Names the instance."""


class IncompleteSeriesError(DicomWebError):
    """Some instances of a series could not be retrieved: the series is not loaded (never a shorter volume).

    ``missing`` lists the SOP Instance UIDs not retrieved and ``failures`` maps each to its error.
    """

    def __init__(self, message: str, path=None, missing: Iterable = (), failures: dict | None = None):
        super().__init__(message, path)
        self.missing = list(missing)
        self.failures = dict(failures or {})


# -- environment ----------------------------------------------------------------
class EnvironmentProblem(GpukitError, RuntimeError):
    """Something the machine lacks (a package, a device)."""


class MissingDecoderError(EnvironmentProblem):
    """No installed pixel-data decoder handles a transfer syntax; names what to install."""


class BackendUnavailableError(EnvironmentProblem):
    """A compute backend was requested that cannot run here; names what is missing."""


class DeviceMemoryError(EnvironmentProblem):
    """A volume does not fit in the free memory of the GPU (the message gives both sizes)."""


__all__ = [n for n in dir() if n.endswith("Error") or n in ("EnvironmentProblem",)]
