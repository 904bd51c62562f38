"""Raw HTTP/1.1 over a socket, so bytes no well-behaved client sends reach the server as is."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import orjson

CHAT = "/v1/chat/completions"


@dataclass
class Reply:
    status: int | None  # None: the server closed the connection without answering
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def send(port: int, data: bytes, *, hang_up: bool = False, timeout_s: float = 30) -> Reply:
    """Write the bytes and read the whole reply (`Connection: close`); hang_up: close first."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(data)
            if hang_up:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before it has read everything
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    raw = b"".join(chunks)
    if not raw:
        return Reply(None, {}, b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return Reply(int(status_line.split()[1]), headers, body)


def dechunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2 :]
    return b"".join(out)


def request(
    body: bytes | None = None,
    *,
    method: str = "POST",
    path: str = CHAT,
    headers: dict[str, str] | None = None,
    raw_headers: bytes = b"",
    content_length: int | None = None,
    chunked: bool = False,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif body is not None:
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    head = "\r\n".join(lines).encode("latin-1") + b"\r\n" + raw_headers + b"\r\n"
    if body is None:
        return head
    if chunked:
        step = 1 << 20
        parts = [body[i : i + step] for i in range(0, len(body), step)]
        return head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    return head + body
