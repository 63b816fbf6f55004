"""``--publish udp://HOST:PORT``: one JSON datagram per frame for robot software on the same machine.

Loopback only unless ``allow_remote=True``: AU streams are biometric data, and sending them across a
network should be a decision, not a typo. A datagram never exceeds ``max_bytes`` (60 KB, below UDP's
65,507-byte limit): dense landmarks are dropped first, then the faces beyond what fits; the record then
says ``"truncated": [...]`` and ``"faces_total"``, so receivers always get complete, valid JSON.
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import numpy as np

from runtime.errors import stderr_line
from runtime.outputs.base import Output, OutputError
from runtime.results import FrameResult
from runtime.strict_json import dumps

DEFAULT_HOST = "127.0.0.1"
MAX_DATAGRAM = 60_000


def parse_udp_url(url: str) -> tuple[str, int]:
    """``udp://HOST:PORT`` (HOST defaults to 127.0.0.1; IPv6 as ``[::1]``) -> (host, port).

    Raises:
        ValueError: not a udp:// URL with a port in 1..65535.
    """
    parts = urlsplit(str(url))
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "udp" or not port or parts.path not in ("", "/"):
        raise ValueError(f"--publish {url!r}: expected udp://HOST:PORT, e.g. udp://127.0.0.1:5005")
    return parts.hostname or DEFAULT_HOST, port


def _is_loopback(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


class UdpPublisher(Output):
    """Sends ``FrameResult.to_json()`` (plus dense ``landmarks`` when ``landmarks=True``) per frame.

    Raises:
        ValueError: a malformed URL, or a non-loopback host without ``allow_remote=True``.
        OutputError: the host cannot be resolved.
    """

    def __init__(self, url: str, *, allow_remote: bool = False, landmarks: bool = False,
                 max_bytes: int = MAX_DATAGRAM):
        self.host, self.port = parse_udp_url(url)
        if not allow_remote and not _is_loopback(self.host, self.port):
            raise ValueError(f"--publish {url!r}: {self.host} is not a loopback address; AU data stays on this "
                             f"machine unless you pass --allow-remote (allow_remote=True)")
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise OutputError(f"--publish {url!r}: cannot resolve {self.host}: {e.strerror}") from e
        # IPv4 first: "localhost" may resolve to ::1 first, and most listeners bind 127.0.0.1.
        family, _, _, _, self.address = min(infos, key=lambda i: i[0] != socket.AF_INET)
        self.landmarks, self.max_bytes = landmarks, max_bytes
        self.sent = self.send_errors = self.truncated = 0
        self._sock = socket.socket(family, socket.SOCK_DGRAM)

    def payload(self, result: FrameResult) -> bytes:
        """The datagram for one frame, made to fit ``max_bytes``."""
        record = result.to_json()
        if self.landmarks:
            for rec, face in zip(record["faces"], result.faces):
                if face.landmarks is not None:
                    rec["landmarks"] = np.round(np.asarray(face.landmarks, np.float64), 1).tolist()
        data = _encode(record)
        if len(data) <= self.max_bytes:
            return data
        self.truncated += 1
        record["truncated"], record["faces_total"] = [], len(record["faces"])
        if any("landmarks" in f for f in record["faces"]):
            for f in record["faces"]:
                f.pop("landmarks", None)
            record["truncated"].append("landmarks")
            data = _encode(record)
        if len(data) > self.max_bytes:
            record["truncated"].append("faces")
            lo, hi = 0, len(record["faces"])  # the most faces (in order) that fit
            faces = record["faces"]
            while lo < hi:
                mid = (lo + hi + 1) // 2
                record["faces"] = faces[:mid]
                lo, hi = (mid, hi) if len(_encode(record)) <= self.max_bytes else (lo, mid - 1)
            record["faces"] = faces[:lo]
            data = _encode(record)
        return data

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto(self.payload(result), self.address)
            self.sent += 1
        except OSError as e:  # a full buffer or an unreachable peer must not stop the pipeline
            self.send_errors += 1
            if self.send_errors == 1:
                stderr_line(f"au-edge: warning: --publish udp://{self.host}:{self.port}: {e.strerror or e} "
                            f"(further send errors are counted, not printed)")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _encode(record: dict) -> bytes:
    """Strict JSON (no bare NaN): receivers in any language parse every datagram."""
    return dumps(record).encode("utf-8")
