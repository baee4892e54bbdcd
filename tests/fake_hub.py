"""A stand-in for the Hugging Face hub, and a hub cache laid out by hand.

``FakeHub`` is a loopback HTTP server answering the requests ``huggingface_hub`` makes
to download a model (point HF_ENDPOINT at ``hub.url``):

* ``GET /api/models/ORG/NAME/revision/REV``: the repo's commit for a branch, tag or
  commit id, and its files;
* ``GET /api/models/ORG/NAME/tree/REV``: the file listing (with sizes);
* ``HEAD`` and ``GET /ORG/NAME/resolve/REV/FILE``: a file's metadata (commit, etag,
  size) and its bytes.

Repos are plain dicts: ``hub.add(repo, {"file": bytes}, branch="main")`` commits a set
of files and moves the branch (or tag) to it, returning the commit id. Every request is
recorded in ``hub.requests`` so a test can tell whether the hub was asked at all.

``lay_out_cache`` writes a repo into a Hugging Face cache folder exactly as
``huggingface_hub`` would after a download (blobs, snapshots of symlinks, refs), so the
offline tests need no server at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


def commit_id(files: dict[str, bytes], parent: str = "") -> str:
    digest = hashlib.sha1(parent.encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha1(files[name]).digest())
    return digest.hexdigest()


def blob_id(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class FakeHub:
    def __init__(self):
        self.commits: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> commit -> files
        self.refs: dict[str, dict[str, str]] = {}  # repo -> branch or tag -> commit
        self.requests: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo: str, files: dict[str, Path | bytes], branch: str = "main") -> str:
        files = {name: _bytes(source) for name, source in files.items()}
        parent = self.refs.get(repo, {}).get(branch, "")
        commit = commit_id(files, parent)
        self.commits.setdefault(repo, {})[commit] = dict(files)
        self.refs.setdefault(repo, {})[branch] = commit
        return commit

    def start(self) -> "FakeHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def downloads(self) -> list[str]:
        """The paths of the files whose bytes were fetched (GET .../resolve/...)."""
        return [path for method, path in self.requests if method == "GET" and "/resolve/" in path]

    # -- answering -------------------------------------------------------------------

    def _commit(self, repo: str, revision: str) -> str | None:
        if repo not in self.commits:
            return None
        revision = unquote(revision)
        if revision in self.commits[repo]:
            return revision
        return self.refs[repo].get(revision)

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = urlparse(self.path).path
                hub.requests.append((self.command, path))
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6:
                    repo, kind, revision = "/".join(parts[2:4]), parts[4], parts[5]
                    return self._api(repo, kind, revision)
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                    return self._file(repo, revision, unquote(name), body)
                self._send(404, b'{"error": "not found"}', {"X-Error-Code": "RepoNotFound"})

            def _api(self, repo: str, kind: str, revision: str) -> None:
                if repo not in hub.commits:
                    return self._send(401, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                commit = hub._commit(repo, revision)
                if commit is None:
                    return self._send(404, b'{"error": "Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"})
                files = hub.commits[repo][commit]
                if kind == "revision":
                    info = {"id": repo, "modelId": repo, "sha": commit, "private": False,
                            "siblings": [{"rfilename": name} for name in sorted(files)]}
                else:
                    info = [{"type": "file", "path": name, "size": len(data), "oid": blob_id(data)}
                            for name, data in sorted(files.items())]
                self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})

            def _file(self, repo: str, revision: str, name: str, body: bool) -> None:
                commit = hub._commit(repo, revision)
                if commit is None:
                    return self._send(404, b"", {"X-Error-Code": "RevisionNotFound" if repo in hub.commits
                                                 else "RepoNotFound"})
                files = hub.commits[repo][commit]
                if name not in files:
                    return self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
                data = files[name]
                headers = {"X-Repo-Commit": commit, "ETag": f'"{blob_id(data)}"',
                           "Content-Type": "application/octet-stream"}
                self._send(200, data, headers, body=body)

            def _send(self, status: int, data: bytes, headers: dict[str, str], body: bool = True) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(data)

        return Handler


def lay_out_cache(cache: Path, repo: str, files: dict[str, Path | bytes], *, revision: str = "main",
                  commit: str | None = None) -> Path:
    """Write ``files`` (name -> a file to copy, or bytes) as ``repo`` at ``revision`` into
    the Hugging Face cache folder ``cache`` (what HF_HUB_CACHE names); returns the snapshot
    folder. Blobs are named by content hash and the snapshot holds relative symlinks to
    them, as huggingface_hub writes them."""
    contents = {name: _bytes(source) for name, source in files.items()}
    commit = commit or commit_id(contents)
    storage = Path(cache) / ("models--" + repo.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if revision != commit:
        (storage / "refs").mkdir(exist_ok=True)
        (storage / "refs" / revision).write_text(commit)
    return snapshot


def _bytes(source: Path | bytes) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file under ``folder`` by its relative name (a checkpoint to put on the hub)."""
    return {str(p.relative_to(folder)): p for p in sorted(Path(folder).rglob("*")) if p.is_file()}
