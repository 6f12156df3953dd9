"""A real Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) for the DICOMweb tests.

:class:`OrthancServer` starts ``Orthanc`` on 127.0.0.1 with a free HTTP port, the DICOM (C-STORE) port off, a
temporary storage folder and a generated JSON configuration (DICOMweb plugin on, authentication on with a test
user), waits until the REST API answers, and stops it on ``stop()`` or when the ``with`` block ends (also when the
block raises). The Debian service that the package may have started is never used.

>>> with OrthancServer() as srv:                            # doctest: +SKIP
...     srv.upload_folder("../shared/data/ct_philips_1mm")
...     srv.dicomweb_url          # http://127.0.0.1:PORT/dicom-web
"""

from __future__ import annotations

import base64
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

#: where Debian's packages put the server and the plugin
ORTHANC_BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
PLUGIN_GLOBS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so*", "/usr/lib/orthanc/libOrthancDicomWeb.so*",
                "/usr/lib/*/orthanc/plugins/libOrthancDicomWeb.so*")

#: the test account (the server runs on 127.0.0.1 only, for the length of the test session)
TEST_USER, TEST_PASSWORD = "gpukit", "s3cret-test-pw"


def find_orthanc() -> tuple[str | None, str | None, str]:
    """``(server binary, DICOMweb plugin .so, why not)``: both paths, or Nones and the reason."""
    binary = next((b for b in ORTHANC_BINARIES if os.access(b, os.X_OK)), None) or shutil.which("Orthanc")
    if binary is None:
        return None, None, "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb; .ci/run does it)"
    plugin = next((p for g in PLUGIN_GLOBS for p in sorted(glob.glob(g))), None)
    if plugin is None:
        return binary, None, "the Orthanc DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
    return binary, plugin, ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OrthancServer:
    """One Orthanc process with its own storage folder and configuration.

    Parameters
    ----------
    user, password : the one account of the server (HTTP basic authentication is on).
    timeout : seconds to wait for the REST API to answer after the start.
    """

    def __init__(self, user: str = TEST_USER, password: str = TEST_PASSWORD, timeout: float = 60.0):
        binary, plugin, why = find_orthanc()
        if why:
            raise RuntimeError(why)
        self.binary, self.plugin = binary, plugin
        self.user, self.password, self.timeout = user, password, timeout
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.workdir: str | None = None

    # -- life cycle ----------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The REST root, e.g. ``http://127.0.0.1:8042``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (QIDO-RS, WADO-RS, STOW-RS)."""
        return f"{self.url}/dicom-web"

    def start(self) -> "OrthancServer":
        self.workdir = tempfile.mkdtemp(prefix="gpukit-orthanc-")
        self.port = free_port()
        config = {
            "Name": "gpukit-test",
            "StorageDirectory": os.path.join(self.workdir, "storage"),
            "IndexDirectory": os.path.join(self.workdir, "storage"),
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,                       # 127.0.0.1 only
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.user: self.password},
            "DicomServerEnabled": False,                        # no DICOM port at all
            "DicomPort": free_port(),
            "Plugins": [self.plugin],
            "StorageCompression": False,                        # files kept byte for byte
            "OverwriteInstances": True,
            "ConcurrentJobs": 2,
            "HttpThreadsCount": 16,
            "KeepAlive": True,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Ssl": False,
                         "Host": f"127.0.0.1:{self.port}", "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
        }
        cfg = os.path.join(self.workdir, "orthanc.json")
        with open(cfg, "w") as fh:
            json.dump(config, fh, indent=2)
        self._log = open(os.path.join(self.workdir, "orthanc.log"), "wb")
        self.proc = subprocess.Popen([self.binary, cfg], stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.workdir, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with code {self.proc.returncode} at start: {self.log_tail()}")
            try:
                self.rest("GET", "/system")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                # not listening yet: wait on the process (not a sleep: returns as soon as it dies)
                try:
                    self.proc.wait(0.1)
                except subprocess.TimeoutExpired:
                    pass
        raise RuntimeError(f"Orthanc did not answer within {self.timeout} s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return Path(self.workdir, "orthanc.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    #: seconds a stopping server gets before SIGKILL (Orthanc takes ~3 s to close its HTTP threads)
    grace = 1.0

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``grace`` s: its storage is thrown away) and remove its
        storage."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "OrthancServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- REST helpers ---------------------------------------------------------------------------------------------
    def rest(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
        """One call to Orthanc's own REST API (authenticated); returns the decoded JSON answer."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        if content_type:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = resp.read()
        return json.loads(data) if data else None

    def upload_file(self, path: "str | os.PathLike") -> dict | None:
        """POST one file to /instances; None when Orthanc refuses it (not DICOM, a DICOMDIR...)."""
        try:
            return self.rest("POST", "/instances", Path(path).read_bytes(), "application/dicom")
        except urllib.error.HTTPError:
            return None

    def upload_folder(self, folder: "str | os.PathLike") -> dict:
        """Upload every file under ``folder``; returns ``{"stored": n, "refused": [paths]}``."""
        stored, refused = 0, []
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                if self.upload_file(p) is None:
                    refused.append(str(p))
                else:
                    stored += 1
        return {"stored": stored, "refused": refused}

    def metrics(self) -> dict:
        return self.rest("GET", "/statistics")


class LocalProxy:
    """A real HTTP server on 127.0.0.1 (port chosen by the system) in a daemon thread, as a context manager.

    Subclasses build their ``http.server`` handler class and pass it to ``__init__``; ``url`` is the server's
    address followed by ``path`` (the proxied server's path prefix)."""

    def __init__(self, handler, path: str = ""):
        import threading
        from http.server import ThreadingHTTPServer

        self.path = path
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
