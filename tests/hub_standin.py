"""A local stand-in for the Hugging Face hub (and a plain HTTPS file server), for tests without the internet.

``HubStandin`` is a threading ``http.server`` on 127.0.0.1 (port 0) answering HEAD and GET on
``/{repo}/resolve/{revision}/{file}`` with the headers ``huggingface_hub.file_download.get_hf_file_metadata``
reads (huggingface_hub 2.5.0): ``X-Repo-Commit`` (the commit the file is stored under in the cache),
``X-Linked-Etag`` / ``ETag`` (the file's sha256, as the hub gives LFS files), ``X-Linked-Size`` and
``Content-Length``; GET honours ``Range: bytes=N-`` (206, how huggingface_hub resumes an ``.incomplete`` file).
Other paths (``/files/...``) are plain downloads. ``drop_after``: the next GET sends the full ``Content-Length``
then closes the connection after that many body bytes; with ``stay_dead`` the server then stays gone (every later
request is cut unanswered: the client's retries fail too), without it later requests are answered (a resume).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


class HubStandin:
    def __init__(self):
        self.files: dict[str, bytes] = {}  # "repo/file" (hub) or "files/name" (plain) -> bytes
        self.drop_after: int | None = None
        self.chunk_delay = 0.0  # seconds slept after each MiB of a body (a slow link: progress bars can be seen)
        self.stay_dead = True  # after the drop, cut every later request (False: answer them, Range included)
        self.dead = False  # set after a drop: every later request is cut before any answer (the server went away)
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Range header) of every request
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _lookup(self):
                standin.requests.append((self.command, self.path, self.headers.get("Range", "")))
                path = self.path.split("?", 1)[0].lstrip("/")
                m = re.match(r"^(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$", path)
                if m:
                    key, rev = f"{m['repo']}/{m['file']}", m["rev"]
                    commit = rev if _HEX40.match(rev) else COMMIT
                else:
                    key, commit = path, None
                return standin.files.get(key), commit

            def _headers(self, data: bytes, commit: str | None, status: int, start: int = 0):
                self.send_response(status)
                if commit:
                    sha = hashlib.sha256(data).hexdigest()
                    self.send_header("X-Repo-Commit", commit)
                    self.send_header("ETag", f'"{sha}"')
                    self.send_header("X-Linked-Etag", f'"{sha}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()

            def _missing(self, commit):
                self.send_response(404)
                if commit:
                    self.send_header("X-Repo-Commit", commit)
                    self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _cut(self) -> bool:
                if standin.dead:
                    self.close_connection = True
                    self.connection.shutdown(2)
                return standin.dead

            def do_HEAD(self):
                data, commit = self._lookup()
                if self._cut():
                    return
                if data is None:
                    return self._missing(commit)
                self._headers(data, commit, 200)

            def do_GET(self):
                data, commit = self._lookup()
                if self._cut():
                    return
                if data is None:
                    return self._missing(commit)
                m = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
                start = int(m.group(1)) if m else 0
                self._headers(data, commit, 206 if start else 200, start)
                body = data[start:]
                if standin.drop_after is not None:
                    self.wfile.write(body[:standin.drop_after])
                    self.wfile.flush()
                    standin.drop_after, standin.dead = None, standin.stay_dead
                    self.close_connection = True
                    self.connection.shutdown(2)  # mid-body: the client sees the connection drop
                    return
                try:
                    for i in range(0, len(body), 1 << 20):
                        self.wfile.write(body[i:i + (1 << 20)])
                        if standin.chunk_delay:
                            self.wfile.flush()
                            time.sleep(standin.chunk_delay)
                except (BrokenPipeError, ConnectionResetError):  # the client went away (a test's app stopped)
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "HubStandin":
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
