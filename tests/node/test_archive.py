"""The model archive: models written under an fsspec URL (a local folder, and s3:// on a moto
server started here as its own process on loopback) are listed only when whole, read back checked
against their SHA-256 and with bounded reads; the background writer uploads and backfills, counts
failures without raising them, and a real daemon copies every model it commits to S3."""

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import fsspec
import numpy as np
import pytest

from qres.node.archive import MAX_OBJECT, ArchiveCorrupt, ArchiveError, ArchiveMissing, ArchiveWriter, ModelArchive, from_config, storage_options
from qres.node.config import ConfigError, init_node, load_config
from qres.node.storage import Store, StoredModel
from qres.swarm import learn


def _model(i: int, round_: int | None = None, verified: bool = True, size: int = 64) -> StoredModel:
    gene = (hashlib.sha256(str(i).encode()).digest() * (size // 32 + 1))[:size]
    return StoredModel(hashlib.sha256(gene).hexdigest()[:16], gene, i if round_ is None else round_, verified)


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _poll(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- a local folder -------------------------------------------------------------------------------

@pytest.fixture(params=["path", "file-url"])
def local(tmp_path, request):
    """An archive in a folder, named by a plain path or a file:// URL; returns (archive, folder)."""
    folder = tmp_path / "archive"
    url = str(folder) if request.param == "path" else folder.as_uri()
    return ModelArchive(url), folder


def test_put_get_and_ids_in_round_order(local):
    archive, folder = local
    models = [_model(5), _model(1, verified=False), _model(3)]
    assert all(archive.put(m) for m in models)
    assert archive.ids() == [models[1].id, models[2].id, models[0].id]
    reader = ModelArchive(str(folder))  # another process's view: nothing cached
    assert reader.ids() == archive.ids()
    for m in models:
        assert reader.get(m.id) == m
    meta = json.loads(next((folder / "models").glob(f"*-{models[0].id}.json")).read_text())
    assert meta["sha256"] == hashlib.sha256(models[0].gene).hexdigest() and meta["bytes"] == 64
    assert not list((folder / "tmp").iterdir())  # the temporary metadata was moved into place


def test_put_is_idempotent_by_id(local):
    archive, folder = local
    m = _model(7)
    assert archive.put(m) is True
    files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    assert archive.put(m) is False
    assert ModelArchive(str(folder)).put(StoredModel(m.id, m.gene, 9, True)) is False  # a later round re-committing the same gene
    assert sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()) == files
    assert archive.ids() == [m.id] and archive.get(m.id).round == 7


def test_a_corrupted_gene_is_detected_and_a_put_repairs_it(local):
    archive, folder = local
    m = _model(2)
    archive.put(m)
    gene_path = folder / "genes" / f"{m.id}.gene"
    gene_path.write_bytes(b"\x00" + m.gene[1:])
    with pytest.raises(ArchiveCorrupt, match="SHA-256"):
        ModelArchive(str(folder)).get(m.id)
    assert ModelArchive(str(folder)).put(m) is True  # not intact, so written again
    assert archive.get(m.id) == m


def test_malformed_metadata_is_a_clear_error(local):
    archive, folder = local
    m = _model(4)
    archive.put(m)
    meta = next((folder / "models").glob("*.json"))
    meta.write_text('{"id": "%s", "round": "four"}' % m.id)
    with pytest.raises(ArchiveCorrupt, match="malformed"):
        archive.get(m.id)


def test_oversized_objects_are_refused(local):
    archive, folder = local
    big = _model(1, size=MAX_OBJECT + 1)
    with pytest.raises(ArchiveError, match="over the archive's"):
        archive.put(big)
    assert archive.ids() == []
    # an archive written by someone else: a gene over the limit, with metadata that matches it
    (folder / "genes").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "genes" / f"{big.id}.gene").write_bytes(big.gene)
    meta = {"id": big.id, "round": 1, "verified": True, "bytes": len(big.gene), "sha256": hashlib.sha256(big.gene).hexdigest()}
    (folder / "models" / f"000000000001-{big.id}.json").write_text(json.dumps(meta))
    with pytest.raises(ArchiveCorrupt, match=f"over {MAX_OBJECT} bytes"):
        archive.get(big.id)
    small = _model(2)
    (folder / "models" / f"000000000002-{small.id}.json").write_bytes(b" " * (MAX_OBJECT + 1))
    with pytest.raises(ArchiveCorrupt, match="metadata .* over"):
        archive.get(small.id)


def test_a_half_written_model_is_not_listed(local):
    archive, folder = local
    done, half = _model(1), _model(2)
    archive.put(done)
    (folder / "genes" / f"{half.id}.gene").write_bytes(half.gene)  # the writer stopped before the metadata
    (folder / "tmp").mkdir(exist_ok=True)
    (folder / "tmp" / "x.json").write_text("{")  # and a temporary metadata object left behind
    assert archive.ids() == [done.id]
    with pytest.raises(ArchiveMissing, match=half.id):
        archive.get(half.id)
    assert archive.put(half) is True and archive.ids() == [done.id, half.id]


def test_unknown_and_malformed_ids(local):
    archive, _ = local
    with pytest.raises(ArchiveMissing, match="no archived model"):
        archive.get("0123456789abcdef")
    with pytest.raises(ArchiveError, match="16 lowercase hex"):
        archive.get("../../etc/passwd")
    with pytest.raises(ArchiveError, match="16 lowercase hex"):
        archive.put(StoredModel("ABC", b"x", 1, True))


# -- configuration ---------------------------------------------------------------------------------

@pytest.fixture
def node_toml(tmp_path):
    return init_node(tmp_path / "n1")


def test_no_archive_by_default(node_toml):
    assert "[archive]" in node_toml.read_text()
    cfg = load_config(node_toml, env={})
    assert cfg.archive_url == "" and cfg.archive_endpoint == "" and from_config(cfg) is None


def test_archive_keys_from_the_environment(node_toml):
    cfg = load_config(node_toml, env={"QRES_ARCHIVE_URL": "s3://bucket/node-a", "QRES_ARCHIVE_ENDPOINT": "http://127.0.0.1:9000"})
    assert (cfg.archive_url, cfg.archive_endpoint) == ("s3://bucket/node-a", "http://127.0.0.1:9000")
    assert storage_options(cfg.archive_url, cfg.archive_endpoint)["client_kwargs"] == {"endpoint_url": "http://127.0.0.1:9000"}
    writer = from_config(cfg)  # no network until something is uploaded
    try:
        assert isinstance(writer, ArchiveWriter) and writer.archive.root == "bucket/node-a"
    finally:
        writer.close(timeout=5)


def test_a_relative_archive_path_is_relative_to_the_config_file(node_toml):
    node_toml.write_text(node_toml.read_text().replace('url = ""', 'url = "models"'))
    assert load_config(node_toml, env={}).archive_url == str(node_toml.parent.resolve() / "models")


@pytest.mark.parametrize(
    "env, match",
    [
        ({"QRES_ARCHIVE_URL": "nosuchproto://bucket/x"}, "archive.url.*'nosuchproto'.*fsspec does not know"),
        ({"QRES_ARCHIVE_ENDPOINT": "127.0.0.1:9000"}, "archive.endpoint.*not an http"),
    ],
)
def test_bad_archive_settings_are_refused(node_toml, env, match):
    with pytest.raises(ConfigError, match=match):
        load_config(node_toml, env=env)


# -- S3 on a moto server ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aws_env():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def moto(aws_env, tmp_path_factory):
    """A moto S3 server on a free loopback port, as its own process; yields its endpoint URL."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"

    def answers():
        assert proc.poll() is None, f"moto server exited with {proc.returncode}; see {log.name}"
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    try:
        _poll(answers, 60, "the moto server")
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def bucket(moto):
    """A new bucket on the moto server; returns (bucket name, endpoint)."""
    name = f"qres-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3", **storage_options("s3://x", moto)).mkdir(name)
    return name, moto


def test_s3_round_trip(bucket):
    name, endpoint = bucket
    url = f"s3://{name}/node-a"
    archive = ModelArchive(url, storage_options(url, endpoint))
    models = [_model(3), _model(1), _model(2, verified=False)]
    assert all(archive.put(m) for m in models) and archive.put(models[0]) is False
    reader = ModelArchive(url, storage_options(url, endpoint))
    assert reader.ids() == [models[1].id, models[2].id, models[0].id]
    assert [reader.get(i) for i in reader.ids()] == [models[1], models[2], models[0]]
    keys = archive.fs.find(name)
    assert f"{name}/node-a/genes/{models[0].id}.gene" in keys and not [k for k in keys if "/tmp/" in k]
    archive.fs.pipe_file(f"{name}/node-a/genes/{models[1].id}.gene", b"tampered")
    with pytest.raises(ArchiveCorrupt, match="SHA-256"):
        reader.get(models[1].id)
    with pytest.raises(ArchiveMissing):
        reader.get(_model(99).id)
    other = f"s3://{name}/node-b"
    assert ModelArchive(other, storage_options(other, endpoint)).ids() == []  # nodes do not see each other's prefix


def test_writer_uploads_committed_models_and_backfills_the_store(bucket, tmp_path):
    name, endpoint = bucket
    url = f"s3://{name}/node-a"
    old = [_model(i) for i in range(1, 4)]
    with Store.open(tmp_path / "data") as store:
        for m in old:
            store.save_model(m.id, m.gene, m.round, verified=True)
        unverified = _model(4, verified=False)
        store.save_model(unverified.id, unverified.gene, unverified.round, verified=False)
        ModelArchive(url, storage_options(url, endpoint)).put(old[0])  # archived already: not uploaded again
        writer = ArchiveWriter(ModelArchive(url, storage_options(url, endpoint)))
        try:
            assert writer.backfill(store) == 3
            new = _model(10)
            writer.committed(new.id, new.gene, new.round)
            reader = ModelArchive(url, storage_options(url, endpoint))
            _poll(lambda: writer.archived == 3, 60, "the uploads")
        finally:
            writer.close(timeout=30)
    assert reader.ids() == [m.id for m in old] + [new.id]
    assert reader.get(new.id) == new and reader.get(old[2].id) == old[2]
    assert writer.counters() == {"archived": 3, "archive_errors": 0, "archive_dropped": 0}


def test_a_writer_whose_server_is_unreachable_counts_errors_and_never_raises(aws_env, tmp_path, caplog):
    url = "s3://nowhere/node-a"
    writer = ArchiveWriter(ModelArchive(url, storage_options(url, f"http://127.0.0.1:{_free_port()}")), queue_size=2, attempts=2, backoff_s=0.05)
    with Store.open(tmp_path / "data") as store:
        m = _model(1)
        store.save_model(m.id, m.gene, m.round, verified=True)
        writer.backfill(store)
    with caplog.at_level(logging.WARNING, logger="qres.node.archive"):
        for i in range(10):  # the queue holds 2: the rest are dropped at once, never waited for
            m = _model(100 + i)
            writer.committed(m.id, m.gene, m.round)
        assert writer.archive_dropped >= 7
        _poll(lambda: writer.archive_errors >= 4, 120, "failed attempts")
        writer.close(timeout=60)
    c = writer.counters()
    assert c["archived"] == 0 and c["archive_errors"] >= 4
    kinds = [r.args[2] for r in caplog.records if r.name == "qres.node.archive"]  # the exception's class name
    assert 1 <= len(kinds) == len(set(kinds)) < c["archive_errors"]  # logged once per kind, counted every time


# -- a real daemon ---------------------------------------------------------------------------------

def _start(dirs, ports, i, extra_env):
    peers = ",".join(f"127.0.0.1:{p}" for j, p in enumerate(ports) if j != i)
    env = {**os.environ, "QRES_GOSSIP_PORT": str(ports[i]), "QRES_API_PORT": str(_free_port()), "QRES_GOSSIP_PEERS": peers,
           "QRES_GOSSIP_ROUND_SECONDS": "0.15", "QRES_SENSOR_OFFSET": str(3000 * i), **extra_env}
    return subprocess.Popen([sys.executable, "-m", "qres.cli", "daemon", "run", "--config", str(dirs[i] / "node.toml")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _committed(d) -> int:
    try:
        with Store.open(d / "data") as s:
            return (s.get("counters") or {}).get("models_committed", 0)
    except Exception:  # not created yet
        return 0


def test_a_daemon_archives_every_model_it_commits_to_s3(bucket, tmp_path):
    name, endpoint = bucket
    dirs = [tmp_path / f"n{i}" for i in range(4)]
    for d in dirs:
        init_node(d)
    genesis = np.zeros(learn.ORDER, "<i4").tobytes()  # a model committed before the archive was configured
    first = StoredModel(hashlib.sha256(genesis).hexdigest()[:16], genesis, 0, True)
    with Store.open(dirs[0] / "data") as s:
        s.save_model(first.id, first.gene, first.round, verified=True)
    ports = [_free_port(socket.SOCK_DGRAM) for _ in dirs]
    url = f"s3://{name}/node-0"
    procs = [_start(dirs, ports, i, {"QRES_ARCHIVE_URL": url, "QRES_ARCHIVE_ENDPOINT": endpoint} if i == 0 else {}) for i in range(4)]
    try:
        _poll(lambda: _committed(dirs[0]) >= 5, 120, "node 0 to commit 5 models")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=30) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    with Store.open(dirs[0] / "data") as s:
        stored = [s.model(i) for i in s.model_ids()]
    assert len(stored) >= 6 and all(m.verified for m in stored) and stored[0] == first
    archive = ModelArchive(url, storage_options(url, endpoint))
    assert set(archive.ids()) == {m.id for m in stored}  # the backfilled model and every one committed while running
    for m in stored:
        assert archive.get(m.id) == m  # same gene (checked against its SHA-256) and round
