"""A second home for a node's verified models: an archive under any fsspec URL (s3:// through
s3fs, file:// or a local path), written in the background so the daemon never waits on it.

Layout under the URL: `genes/<id>.gene` holds a model's gene bytes, `models/<round>-<id>.json`
its metadata (id, round, verified, size in bytes, SHA-256 of the gene). The gene is written first
and the metadata last, the metadata through a temporary object moved into place, so a model is
listed only once it is whole; `get` checks the gene against the hash the metadata holds. Every
read is bounded to MAX_OBJECT bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import queue
import re
import threading
import uuid
from typing import Protocol

import fsspec
from fsspec.utils import get_protocol

from ..errors import QresError, QresFormatError
from .storage import StoredModel

MAX_OBJECT = 1 << 20  # bytes: the largest gene or metadata object read or written (a gene is a few KiB)
_ID = re.compile(r"[0-9a-f]{16}")
_META_NAME = re.compile(r"(\d+)-([0-9a-f]{16})\.json")
log = logging.getLogger(__name__)


class ArchiveError(QresError):
    """The model archive refused a request: a bad model id, or a model too large to archive."""


class ArchiveMissing(ArchiveError, LookupError):
    """The archive holds no (complete) model of that id."""


class ArchiveCorrupt(ArchiveError, QresFormatError):
    """An archived model is damaged: its gene does not match its metadata, or an object is malformed or oversized."""


class ModelLike(Protocol):
    id: str
    gene: bytes
    round: int
    verified: bool


def _check_id(model_id: str) -> None:
    if not isinstance(model_id, str) or not _ID.fullmatch(model_id):
        raise ArchiveError(f"model id {model_id!r:.40} is not 16 lowercase hex digits")


class ModelArchive:
    """Models archived under `url`; `storage_options` go to the fsspec filesystem (e.g. s3fs's
    client_kwargs). Writes assume one writer per URL (one node per prefix)."""

    def __init__(self, url: str, storage_options: dict | None = None):
        options = dict(storage_options or {})
        if get_protocol(url) in ("file", "local"):
            options.setdefault("auto_mkdir", True)
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **options)
        self.root = root.rstrip("/")
        self._index: dict[str, tuple[int, str]] | None = None  # id -> (round, metadata path), from the last listing

    def _gene_path(self, model_id: str) -> str:
        return f"{self.root}/genes/{model_id}.gene"

    def _read(self, path: str, what: str) -> bytes:
        """An object's bytes, refusing objects over MAX_OBJECT bytes without reading them whole."""
        try:
            data = self.fs.cat_file(path, start=0, end=MAX_OBJECT + 1)
        except FileNotFoundError:
            raise ArchiveMissing(f"{self.url}: {what} {path} is missing") from None
        if len(data) > MAX_OBJECT:
            raise ArchiveCorrupt(f"{self.url}: {what} {path} is over {MAX_OBJECT} bytes; refusing to read it")
        return data

    def _listing(self) -> dict[str, tuple[int, str]]:
        """List the metadata objects: id -> (round, path); the lowest round wins for an id listed twice."""
        folder = f"{self.root}/models"
        self.fs.invalidate_cache(folder)
        try:
            paths = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            paths = []
        index: dict[str, tuple[int, str]] = {}
        for path in sorted(paths):
            m = _META_NAME.fullmatch(posixpath.basename(path))
            if m and (m[2] not in index or int(m[1]) < index[m[2]][0]):
                index[m[2]] = (int(m[1]), path)
        self._index = index
        return index

    def ids(self) -> list[str]:
        """Ids of the archived models whose metadata is in place, by round (oldest first); `get`
        verifies each gene."""
        index = self._listing()
        return sorted(index, key=lambda i: (index[i][0], i))

    def get(self, model_id: str) -> StoredModel:
        """The archived model `model_id`; ArchiveMissing if it is not archived (or only half
        written), ArchiveCorrupt if its gene does not match its metadata."""
        _check_id(model_id)
        entry = (self._index or {}).get(model_id) or self._listing().get(model_id)
        if entry is None:
            raise ArchiveMissing(f"{self.url}: no archived model {model_id}")
        raw = self._read(entry[1], "metadata")
        try:
            meta = json.loads(raw)
            digest, round_, verified = meta["sha256"], meta["round"], meta["verified"]
            if meta["id"] != model_id or not isinstance(round_, int) or not isinstance(verified, bool) or not isinstance(digest, str):
                raise ValueError("fields of the wrong type or another model's id")
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveCorrupt(f"{self.url}: metadata {entry[1]} is malformed ({exc})") from None
        gene = self._read(self._gene_path(model_id), "gene")
        if hashlib.sha256(gene).hexdigest() != digest:
            raise ArchiveCorrupt(f"{self.url}: gene of {model_id} ({len(gene)} bytes) does not match the SHA-256 its metadata holds")
        return StoredModel(model_id, gene, round_, verified)

    def put(self, model: ModelLike) -> bool:
        """Archive `model` (anything with id, gene, round, verified); True if written, False if it was
        already archived intact (a damaged copy is rewritten)."""
        _check_id(model.id)
        gene = bytes(model.gene)
        if len(gene) > MAX_OBJECT:
            raise ArchiveError(f"model {model.id}: gene of {len(gene)} bytes is over the archive's {MAX_OBJECT}-byte limit")
        index = self._listing() if self._index is None else self._index
        old = index.get(model.id)
        if old is not None:
            try:
                self.get(model.id)
                return False
            except ArchiveError:  # half written or damaged: write it again
                pass
        meta = {"id": model.id, "round": int(model.round), "verified": bool(model.verified), "bytes": len(gene),
                "sha256": hashlib.sha256(gene).hexdigest()}
        self.fs.pipe_file(self._gene_path(model.id), gene)
        final = f"{self.root}/models/{int(model.round):012d}-{model.id}.json"
        temporary = f"{self.root}/tmp/{uuid.uuid4().hex}.json"
        self.fs.pipe_file(temporary, json.dumps(meta, sort_keys=True).encode())
        self.fs.mv(temporary, final)
        if old is not None and old[1] != final:
            self.fs.rm_file(old[1])
        index[model.id] = (int(model.round), final)
        return True


class ArchiveWriter:
    """The daemon's side of an archive: `committed` queues a model without ever blocking, a
    background thread uploads it with retries and exponential backoff. Failures are counted and
    logged once per kind of error, never raised to the caller.

    Counters: `archived` (models written; one found archived intact is not counted),
    `archive_errors` (failed attempts: network, credentials, server), `archive_dropped` (models
    given up: queue full, or every attempt failed; the next `backfill` catches up)."""

    def __init__(self, archive: ModelArchive, queue_size: int = 256, attempts: int = 4, backoff_s: float = 0.5, max_backoff_s: float = 8.0):
        self.archive = archive
        self.attempts = attempts
        self.backoff_s = backoff_s  # first wait between attempts, doubling up to max_backoff_s (seconds)
        self.max_backoff_s = max_backoff_s
        self.archived = self.archive_errors = self.archive_dropped = 0
        self._queue: queue.Queue[StoredModel] = queue.Queue(queue_size)
        self._backfill: list[StoredModel] = []
        self._lock = threading.Lock()
        self._kinds: set[str] = set()  # kinds of error already logged
        self._closing = threading.Event()
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qres-archive", daemon=True)
        self._thread.start()

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {"archived": self.archived, "archive_errors": self.archive_errors, "archive_dropped": self.archive_dropped}

    def _count(self, name: str, k: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + k)

    def committed(self, model_id: str, gene: bytes, round_: int) -> None:
        """Queue a verified model for upload; drops (and counts) it when the queue is full."""
        try:
            self._queue.put_nowait(StoredModel(model_id, bytes(gene), int(round_), True))
        except queue.Full:
            self._count("archive_dropped")

    def backfill(self, store) -> int:
        """Queue every verified model of `store` (a qres Store) for upload where the archive lacks
        it; the archive is listed on the writer's thread. Returns how many models were read."""
        models = [m for m in map(store.model, store.model_ids()) if m is not None and m.verified]
        with self._lock:
            self._backfill.extend(models)
        return len(models)

    def close(self, timeout: float = 10.0) -> None:
        """Upload what is queued within `timeout` seconds, then stop the thread (abandoning the rest)."""
        self._closing.set()
        self._thread.join(timeout)
        self._abort.set()

    def _run(self) -> None:
        while not self._abort.is_set():
            with self._lock:
                pending, self._backfill = self._backfill, []
            if pending:
                self._sync(pending)
                continue
            try:
                model = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._closing.is_set() and not self._backfill:
                    return
                continue
            self._upload(model)

    def _sync(self, models: list[StoredModel]) -> None:
        listed = self._attempt("listing the archive", self.archive.ids)
        if listed is None:
            self._count("archive_dropped", len(models))
            return
        have = set(listed)
        for model in models:
            if model.id not in have and not self._abort.is_set():
                self._upload(model)

    def _upload(self, model: StoredModel) -> None:
        written = self._attempt(f"uploading model {model.id}", lambda: self.archive.put(model))
        if written is None:
            self._count("archive_dropped")
        elif written:
            self._count("archived")

    def _attempt(self, what: str, fn):
        """fn()'s result, trying up to `attempts` times with backoff; None when every attempt failed
        (or the writer was aborted). An ArchiveError is not retried: it cannot succeed later."""
        delay = self.backoff_s
        for attempt in range(self.attempts):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - a background uploader counts every failure, raises none
                self._failed(what, exc)
                if isinstance(exc, ArchiveError) or attempt + 1 == self.attempts or self._abort.wait(delay):
                    return None
                delay = min(2 * delay, self.max_backoff_s)

    def _failed(self, what: str, exc: Exception) -> None:
        kind = type(exc).__name__
        with self._lock:
            self.archive_errors += 1
            new = kind not in self._kinds
            self._kinds.add(kind)
        if new:
            log.warning("model archive %s: %s failed (%s: %s); further %s errors are only counted", self.archive.url, what, kind, exc, kind)


def storage_options(url: str, endpoint: str = "") -> dict:
    """fsspec options for an archive URL: for S3, the endpoint of an S3-compatible server and short
    timeouts (connect 5 s, read 10 s, one attempt: the writer retries itself)."""
    if get_protocol(url) not in ("s3", "s3a"):
        return {}
    options: dict = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 1}}}
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return options


def from_config(cfg) -> ArchiveWriter | None:
    """The writer for a node's configured archive (`archive.url`, `archive.endpoint`), or None when none is configured."""
    if not cfg.archive_url:
        return None
    return ArchiveWriter(ModelArchive(cfg.archive_url, storage_options(cfg.archive_url, cfg.archive_endpoint)))
