"""The `qres` command: compress and decompress CSV and .npy files, inspect .qres files, benchmark, simulate a swarm."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from enum import Enum
from pathlib import Path
from typing import Optional

import click
import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table as RichTable

from . import __version__, atomic, datasets
from .codec import container as ct
from .codec.model import Model
from .codec.stream import block_bounds, compress_columns, decompress_columns, read_manifest
from .errors import QresError
from .table import Column, Table, read_csv, text_reason, write_csv

# Errors reach the user as one line (see main); typer's own traceback printer, which shows local
# variables (a key among them), is never used.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=140)
out = Console() if sys.stdout.isatty() else Console(width=140)  # tables stay readable in logs

PROGRESS_MIN_BYTES = 4 << 20  # show a progress bar for inputs at least this large


_debug = False  # `qres --debug`: print the traceback of an unexpected error (never local variables)


def _say_error(msg: str) -> None:
    """Print `error: msg` to stderr on one line, never wrapped."""
    typer.echo("error: " + " ".join(str(msg).split()), err=True)


def _fail(msg: str, code: int = 1) -> None:
    _say_error(msg)
    raise typer.Exit(code)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"qres {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="on an unexpected error, also print its traceback (never local variables)"),
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True, help="print the version and exit"),
) -> None:
    """QRES: predictive fixed-point compression of sensor streams, for swarms of small nodes."""
    global _debug
    _debug = debug


def _output_for(input: Path, output: Path, force: bool) -> None:
    """Refuse an output that is the input, or that exists without --force (usage errors)."""
    if atomic.same_file(input, output):
        _fail(f"{output} is the input file: choose another output with -o", 2)
    if output.exists() and not force:
        _fail(f"{output} exists: use --force to overwrite it, or choose another output with -o", 2)


def _key(key_file: Optional[Path]) -> Optional[bytes]:
    if key_file is None:
        return None
    try:
        return ct.load_key(key_file)
    except (OSError, ValueError) as exc:
        _fail(f"cannot use key file {key_file}: {exc}")
    return None


def _progress(total: int, label: str) -> Progress:
    return Progress(
        TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
        console=console, transient=True, disable=total < PROGRESS_MIN_BYTES,
    )


def table_to_columns(table: Table, max_error: Optional[float]) -> tuple[list[np.ndarray], list, dict]:
    """Numeric and timestamp columns become channels (timestamps always lossless); text goes to the manifest."""
    channels: list[np.ndarray] = []
    errors: list[Optional[float]] = []
    layout = []
    for col in table.columns:
        entry = {"name": col.name, "kind": col.kind, "meta": col.meta}
        if col.kind == "text":
            entry["values"] = list(col.values)
        else:
            entry["channel"] = len(channels)
            channels.append(np.asarray(col.values))
            lossy = max_error is not None and col.kind in ("int", "float")
            errors.append(max_error if lossy else None)
            if lossy and col.kind == "float":
                entry["meta"] = {**col.meta, "style": "repr"}  # decoded values need their own digits
        layout.append(entry)
    extra = {"source": "csv", "rows": table.n_rows, "columns": layout}
    if table.newline != "\n":
        extra["newline"] = table.newline
    if table.layout:
        extra["layout"] = table.layout
    return channels, errors, extra


def columns_to_table(channels: list[np.ndarray], extra: dict) -> Table:
    cols = []
    try:
        for entry in extra["columns"]:
            if entry["kind"] == "text":
                values = [str(v) for v in entry["values"]]
            else:
                values = channels[entry["channel"]]
                if entry["kind"] == "int" and values.dtype.kind == "f":
                    values = np.rint(values).astype(np.int64)
            cols.append(Column(str(entry["name"]), entry["kind"], values, dict(entry.get("meta", {}))))
    except (KeyError, IndexError, TypeError) as exc:
        raise QresError(f"the file's table layout is damaged ({exc!r})") from None
    newline = extra.get("newline", "\n")
    return Table(cols, newline if newline in ("\n", "\r\n", "\r") else "\n", extra.get("layout", {}))


@app.command()
def compress(
    input: Path = typer.Argument(..., help="CSV (with a header row) or .npy file", exists=True, dir_okay=False),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="output .qres file (default: INPUT.qres)"),
    max_error: Optional[float] = typer.Option(None, "--max-error", help="error bound per value (absolute); default lossless"),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="32-byte key (raw or 64 hex chars): encrypt with AES-256-GCM"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite OUTPUT if it exists"),
) -> None:
    """Compress a CSV or .npy file into a .qres file (written whole, or not at all)."""
    key = _key(key_file)
    output = output or input.with_suffix(input.suffix + ".qres")
    _output_for(input, output, force)
    size = input.stat().st_size
    t0 = time.perf_counter()
    try:
        with _progress(size, "compressing") as bar:
            task = bar.add_task("compress", total=2 * size)
            if input.suffix.lower() == ".npy":
                arr = np.load(input, allow_pickle=False)
                if arr.ndim not in (1, 2):
                    _fail(f"{input}: only 1-D and 2-D arrays are supported, got shape {arr.shape}")
                arr2 = arr.reshape(len(arr), -1) if arr.ndim == 2 else arr[:, None]
                channels = [np.ascontiguousarray(arr2[:, c]) for c in range(arr2.shape[1])]
                errors = max_error
                extra = {"source": "npy", "shape": list(arr.shape)}
                bar.update(task, completed=size)
            else:
                table = read_csv(input, progress=lambda n: bar.update(task, completed=n))
                channels, errors, extra = table_to_columns(table, max_error)
                if not channels:
                    reasons = "; ".join(f"column {c.name!r}: {text_reason(c)}" for c in table.columns)
                    _fail(f"{input}: no numeric or timestamp column to compress ({reasons})")
            rows = len(channels[0])
            data = compress_columns(
                channels, max_error=errors, key=key, extra=extra,
                progress=lambda r: bar.advance(task, size * r / max(rows, 1)),
            )
    except (QresError, ValueError, TypeError) as exc:
        _fail(f"{input}: {exc}")
    except OSError as exc:
        _fail(f"{input}: cannot read it: {exc}")
    try:
        atomic.write_bytes(output, data, overwrite=force)
    except OSError as exc:
        _fail(f"{output}: not written: {exc.strerror or exc}")
    dt = time.perf_counter() - t0
    nvals = sum(len(c) for c in channels)
    console.print(
        f"{input} -> {output}: {size:,} bytes -> {len(data):,} bytes "
        f"({8 * len(data) / max(nvals, 1):.2f} bits/value over {nvals:,} values, {dt:.2f} s)"
    )


def _write_npy(path: Path, arr: np.ndarray) -> None:
    """np.save to exactly `path` (np.save given a name would append .npy to it)."""
    with open(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)


@app.command()
def decompress(
    input: Path = typer.Argument(..., help=".qres file", exists=True, dir_okay=False),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output",
        help="output file (default: INPUT without .qres). A table comes back as CSV; an array as .npy, or as CSV when OUTPUT ends in .csv",
    ),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="key the file was encrypted with"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite OUTPUT if it exists"),
) -> None:
    """Decompress a .qres file back to CSV or .npy (written whole, or not at all)."""
    key = _key(key_file)
    if output is None:
        output = input.with_suffix("") if input.suffix == ".qres" else input.with_suffix(".csv")
    _output_for(input, output, force)
    try:
        channels, manifest = decompress_columns(input.read_bytes(), key=key)
    except (QresError, ValueError) as exc:
        _fail(f"{input}: {exc}")
    except OSError as exc:
        _fail(f"{input}: cannot read it: {exc}")
    extra = manifest.get("extra") or {}
    try:
        with atomic.replacing(output, overwrite=force) as tmp:
            if extra.get("source") == "csv":
                write_csv(columns_to_table(channels, extra), tmp)
            elif output.suffix.lower() == ".csv":
                cols = [Column(f"c{i}", "int" if a.dtype.kind in "iu" else "float", a.astype(np.int64 if a.dtype.kind in "iu" else np.float64), {}) for i, a in enumerate(channels)]
                write_csv(Table(cols), tmp)
            else:
                arr = np.stack(channels, axis=1) if channels else np.zeros((0, 0))
                shape = extra.get("shape")
                if isinstance(shape, list) and len(shape) == 1:
                    arr = arr[:, 0]
                _write_npy(tmp, arr)
    except QresError as exc:
        _fail(f"{input}: {exc}")
    except OSError as exc:
        _fail(f"{output}: not written: {exc.strerror or exc}")
    console.print(f"{input} -> {output}")


@app.command()
def info(
    input: Path = typer.Argument(..., help=".qres file", exists=True, dir_okay=False),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="key, for an encrypted file"),
    as_json: bool = typer.Option(False, "--json", help="print machine-readable JSON"),
) -> None:
    """Show a .qres file's header, blocks, channels, sizes and compression ratio."""
    try:
        data = input.read_bytes()
    except OSError as exc:
        _fail(f"{input}: cannot read it: {exc}")
    key = _key(key_file)
    try:
        header = ct.read_header(data)
        blocks = ct.describe(data, key=key)
        _, parsed = ct.read_container(data, key=key)
    except QresError as exc:
        _fail(f"{input}: {exc}")
    try:
        manifest = read_manifest(parsed, header)
    except QresError as exc:
        _fail(f"{input}: {exc}")
    extra = manifest.get("extra") or {}
    names = {e.get("channel"): e.get("name") for e in extra.get("columns", []) if "channel" in e}
    first_model = next((b for b in parsed if isinstance(b, ct.EpiphanyBlock)), None)
    first_residual = next((b for b in parsed if isinstance(b, ct.ResidualBlock)), None)
    chans = []
    fallbacks = manifest.get("fallbacks", [])
    coded = [i for i in range(len(manifest.get("dtypes", []))) if i not in fallbacks]  # stored columns the models code
    if first_model is not None:
        try:
            nch = len(Model.from_bytes(first_model.model).channels)
            bounds = block_bounds(header, manifest, first_residual, nch) if first_residual else None
            model = Model.from_bytes(first_model.model)
            for j, (i, ch) in enumerate(zip(coded, model.channels)):
                t, p = ch.transform, ch.predictor
                entry = {
                    "channel": i, "name": names.get(i, f"c{i}"), "dtype": str(np.dtype(t.dtype)), "transform": t.kind,
                    "decimals": t.decimals, "step": t.step, "order": p.order, "seasonal_lags": list(p.full_lags),
                }
                if bounds is not None:  # the bound a decoded value keeps, in the column's units
                    q = t.quantum
                    entry["max_error"] = None if q is None else (bounds[j] + (0.5 if t.kind == "binary" else 0)) * q
                chans.append(entry)
        except QresError as exc:
            chans.append({"error": str(exc)})
    for i in fallbacks:  # coded by the generic fallback (docs/FORMAT.md, Fallback columns)
        chans.append({"channel": i, "name": names.get(i, f"c{i}"), "dtype": str(np.dtype(manifest["dtypes"][i])), "transform": "fallback"})
    chans.sort(key=lambda c: c.get("channel", -1))
    rows = manifest.get("rows", 0)
    nvals = rows * len(manifest.get("dtypes", []))
    summary = {
        "file": str(input), "bytes": len(data), "version": f"{header.major}.{header.minor}",
        "flags": {"solid": header.solid, "encrypted": header.encrypted, "block_crc": header.block_crc, "body_crc": header.body_crc},
        "uncompressed_bytes": header.total_size, "ratio": header.total_size / max(len(data), 1),
        "rows": rows, "values": nvals, "bits_per_value": 8 * len(data) / max(nvals, 1),
        "error_bounded": manifest.get("lossy", False), "channels": chans, "blocks": blocks,
    }
    if as_json:
        out.print_json(json.dumps(summary, default=str))
        return
    out.print(f"[bold]{input}[/bold]: QRES {summary['version']}, {len(data):,} bytes, flags {summary['flags']}")
    out.print(f"{rows:,} rows x {len(manifest.get('dtypes', []))} channels; {header.total_size:,} bytes uncompressed; "
              f"ratio {summary['ratio']:.2f}; {summary['bits_per_value']:.2f} bits/value")
    t = RichTable(title="blocks")
    for col in ("#", "type", "offset", "bytes", "fields"):
        t.add_column(col)
    for b in blocks:
        fields = {k: v for k, v in b.items() if k not in ("index", "type", "type_code", "offset", "size", "manifest")}
        t.add_row(str(b["index"]), b["type"], str(b["offset"]), str(b["size"]), json.dumps(fields, default=str))
    out.print(t)
    if chans:
        t = RichTable(title="channels (first block's model)")
        columns = list(dict.fromkeys(k for c in chans for k in c))
        for col in columns:
            t.add_column(col)
        for c in chans:
            t.add_row(*[str(c.get(k, "")) for k in columns])
        out.print(t)


@app.command()
def keygen(path: Path = typer.Argument(..., help="key file to create (64 hex chars, mode 0600)")) -> None:
    """Create a new random AES-256 key file."""
    try:
        ct.generate_key_file(path)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"wrote {path}")


@app.command()
def bench(
    files: list[str] = typer.Argument(None, help="CSV files or bundled dataset names (default: every bundled dataset)"),
    out_dir: Path = typer.Option(Path("qres-bench"), "--out", help="folder for results.json, results.md and results.png"),
    modes: list[str] = typer.Option(["lossless", "frames", "lossy", "speed"], "--mode", help="lossless, frames, lossy, speed"),
) -> None:
    """Compare qres with the installed peers (pcodec, zstd, xz, SZ3) and write JSON, Markdown and a plot."""
    from . import benchmark

    try:  # before the long run: a folder that cannot take the results fails now
        out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        _fail(f"--out {out_dir}: results cannot be written there: {exc.strerror or exc}")
    try:
        res = benchmark.run(files or None, modes=modes, progress=lambda m: console.print(f"[dim]{m}[/dim]"))
    except (ValueError, OSError, KeyError) as exc:
        _fail(str(exc))
    out.print(benchmark.render_rich(res))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        benchmark.save_json(res, out_dir / "results.json")
        atomic.write_text(out_dir / "results.md", benchmark.render_markdown(res), overwrite=True)
        benchmark.plot(res, out_dir / "results.png")
    except OSError as exc:
        _fail(f"--out {out_dir}: results not written: {exc.strerror or exc}")
    console.print(f"wrote {out_dir}/results.json, results.md, results.png")
    if res.get("checks"):
        _fail("some checks failed: " + "; ".join(res["checks"]))


@app.command()
def regimes(
    input: Path = typer.Argument(..., help="CSV file with a header row", exists=True, dir_okay=False),
    column: Optional[str] = typer.Option(None, "--column", help="numeric column to watch (default: the first one)"),
    as_json: bool = typer.Option(False, "--json", help="print machine-readable JSON"),
) -> None:
    """Print where a stream changes regime (calm, prestorm, storm) under the swarm's hysteresis rules."""
    from .swarm import detect_regimes

    try:
        table = read_csv(input)
    except (QresError, OSError) as exc:
        _fail(f"{input}: {exc}")
    numeric = [c for c in table.columns if c.kind in ("int", "float")]
    if column is not None:
        numeric = [c for c in numeric if c.name == column]
        if not numeric:
            _fail(f"{input}: no numeric column named {column!r} (numeric: {', '.join(c.name for c in table.columns if c.kind in ('int', 'float'))})")
    if not numeric:
        _fail(f"{input}: no numeric column")
    col = numeric[0]
    changes = detect_regimes(np.asarray(col.values, dtype=np.float64))
    if as_json:
        out.print_json(json.dumps({"file": str(input), "column": col.name, "changes": changes}))
        return
    t = RichTable(title=f"regimes of {col.name} ({len(col.values):,} values)")
    t.add_column("from row", justify="right")
    t.add_column("regime")
    for index, regime in changes:
        t.add_row(str(index), regime)
    out.print(t)


def _choices(name: str, values) -> type[Enum]:
    """A str Enum whose members are `values`, so typer checks them and --help lists them."""
    return Enum(name, {v: v for v in values}, type=str)


def _sim_choices():
    from .swarm import attacks, simulator, topology

    return (
        _choices("Attack", attacks.ATTACKS),
        _choices("Dataset", datasets.names()),
        _choices("Topology", topology.TOPOLOGIES),
        _choices("AggregatorName", simulator.AGGREGATORS),
        _choices("NetworkAttack", attacks.NETWORK_ATTACKS),
    )


Attack, DatasetName, Topology, AggregatorName, NetworkAttack = _sim_choices()


def _summary_table(summary: dict, title: str, figures: bool = False) -> RichTable:
    """A summary as a table: one row per key, or with `figures` the swarm simulator's figures under
    their questions, each with its label, value, unit and meaning (`qres.swarm.report.SECTIONS`)."""
    t = RichTable(title=title)
    if figures:
        from rich.text import Text

        from .swarm.report import figure_sections

        for name, justify in (("figure", "left"), ("value", "right"), ("unit", "left"), ("meaning", "left")):
            t.add_column(name, justify=justify)
        for question, rows in figure_sections(summary):
            t.add_row(Text(question, style="bold"))
            for row in rows:
                t.add_row(*map(Text, row))
            t.add_section()
        return t
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in summary.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a} {b:.3f}" for a, b in v.items())
        elif isinstance(v, float):
            v = f"{v:.4g}"
        t.add_row(k, str(v))
    return t


def _run_sim(cfg) -> "object":
    from .swarm.simulator import simulate

    total = cfg.rounds * (2 if cfg.attack != "none" and cfg.byzantine > 0 else 1)
    with _progress(total, "simulating") as bar:
        task = bar.add_task("simulating", total=total)
        return simulate(cfg, progress=lambda done, _total: bar.update(task, completed=done))


@app.command()
def sim(
    nodes: int = typer.Option(100, "--nodes", min=2, help="nodes in the swarm"),
    rounds: int = typer.Option(100, "--rounds", min=1, help="gossip rounds (with --days: the most to run)"),
    byzantine: float = typer.Option(0.0, "--byzantine", min=0.0, max=0.99, help="fraction of attackers, 0..0.99"),
    attack: Attack = typer.Option("none", "--attack", help="what the attackers do"),
    dataset: DatasetName = typer.Option("heartpy_ppg", "--dataset", help="bundled recording the nodes observe"),
    seed: int = typer.Option(0, "--seed", help="seed of every random choice (same seed, same results)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="folder for summary.json, rounds.csv, plots and index.html"),
    topology: Topology = typer.Option("random_regular", "--topology", help="who hears whom"),
    degree: Optional[int] = typer.Option(None, "--degree", min=1, help="peers each node hears (default: 16, at most nodes - 1)"),
    relay: Optional[int] = typer.Option(None, "--relay", min=0, help="updates a node takes per round from its peers' epidemic relays (default: 2, at most --degree)"),
    loss: float = typer.Option(0.0, "--loss", min=0.0, max=1.0, help="probability a message is lost"),
    delay: float = typer.Option(0.0, "--delay", min=0.0, max=1.0, help="probability a message arrives a round late"),
    aggregator: AggregatorName = typer.Option("adaptive", "--aggregator", help="robust aggregation rule"),
    days: float = typer.Option(0.0, "--days", min=0.0, help="run until every honest node has lived this many days"),
    charge: float = typer.Option(1.0, "--charge", min=0.01, max=1.0, help="battery charge at the start (fraction)"),
    solar: bool = typer.Option(True, "--solar/--no-solar", help="intermittent solar charging"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Simulate a swarm learning one model by gossip on a bundled recording, under attack if asked."""
    from .swarm.simulator import SimConfig

    degree = min(SimConfig.degree, nodes - 1) if degree is None else degree
    relay = min(SimConfig.relay, degree) if relay is None else relay
    cfg = SimConfig(
        nodes=nodes, rounds=rounds, byzantine=byzantine, attack=attack.value, dataset=dataset.value, seed=seed,
        topology=topology.value, degree=degree, relay=relay, loss=loss, delay=delay, aggregator=aggregator.value, days=days,
        initial_charge=charge, solar=solar,
    )
    try:
        cfg.check()
    except ValueError as exc:
        _fail(str(exc), 2)
    res = _run_sim(cfg)
    if out_dir is not None:
        from .swarm.report import write_report

        try:
            write_report(res, out_dir)
        except OSError as exc:
            _fail(f"{out_dir}: {exc}")
    if as_json:
        out.print_json(json.dumps(res.summary))
    else:
        from .swarm.report import run_title

        out.print(_summary_table(res.summary, run_title(res.summary), figures=True))
    if out_dir is not None:
        console.print(f"report written to {out_dir / 'index.html'}")


daemon_app = typer.Typer(no_args_is_help=True, help="Run one QRES node: configuration, keys, and the daemon itself.")
app.add_typer(daemon_app, name="daemon")


@daemon_app.command("init")
def daemon_init(
    directory: Path = typer.Argument(..., help="folder for node.toml and node.key (created if needed)"),
    port: int = typer.Option(7000, "--port", min=1, max=65535, help="UDP port for gossip"),
    api_port: int = typer.Option(8000, "--api-port", min=1, max=65535, help="TCP port for the REST API"),
) -> None:
    """Write a commented node.toml and a new Ed25519 key pair into DIRECTORY."""
    from .node.config import ConfigError, init_node, load_config

    try:
        cfg = load_config(init_node(directory, port, api_port))
    except (ConfigError, OSError) as exc:
        _fail(str(exc))
    out.print(f"node {cfg.identity().did}")
    console.print(f"wrote {Path(directory) / 'node.toml'} and {cfg.key_file}")
    console.print(f"the API's bearer token is api.token in {Path(directory) / 'node.toml'} (mode 0600: keep it private)")


@daemon_app.command("run")
def daemon_run(
    config: Path = typer.Option(..., "--config", help="the node's node.toml (see `qres daemon init`)"),
    feed: Path = typer.Option(None, "--feed", exists=True, dir_okay=False, help="CSV file whose readings the node replays as its sensor"),
    column: str = typer.Option(None, "--column", help="the --feed column (default: the first all-numeric one)"),
    rate: float = typer.Option(32.0, "--rate", min=0.1, max=1e6, help="--feed readings per second"),
) -> None:
    """Run one node until SIGINT or SIGTERM, then save its state and stop cleanly."""
    from .errors import QresError
    from .node.config import load_config
    from .node.daemon import run_daemon

    try:
        cfg = load_config(config)
        readings = None
        if feed is not None:
            channel = datasets.read_channel(feed, column)
            readings = channel.exact_integers
            console.print(f"feeding {len(readings):,} readings of {feed}:{channel.name} at {rate:g}/s")
        counters = run_daemon(cfg, readings, rate)
    except (QresError, OSError, ValueError) as exc:
        _fail(str(exc))
    console.print("stopped: " + ", ".join(f"{k} {v}" for k, v in sorted(counters.items())))


@app.command()
def cluster(
    nodes: int = typer.Option(10, "--nodes", min=2, max=1000, help="daemon processes to start on loopback"),
    byzantine: float = typer.Option(0.0, "--byzantine", min=0.0, max=0.49, help="fraction of the nodes that attack"),
    attack: NetworkAttack = typer.Option("bias", "--attack", help="what the attackers do (the simulator's attacks that work over a network)"),
    dataset: DatasetName = typer.Option("heartpy_ppg", "--dataset", help="bundled recording the nodes read"),
    rounds: int = typer.Option(30, "--rounds", min=1, help="rounds every honest node closes before the cluster stops"),
    out_dir: Path = typer.Option(..., "--out", help="empty folder for the nodes' directories, logs and summary.json"),
    round_seconds: float = typer.Option(0.5, "--round-seconds", min=0.05, help="seconds per gossip round"),
    fanout: int = typer.Option(8, "--fanout", min=1, help="peers each message goes to"),
    ttl: Optional[int] = typer.Option(None, "--ttl", min=0, max=16, help="times a message is passed on [default: enough for fanout^ttl >= nodes]"),
    seed: int = typer.Option(0, "--seed", help="seed of the nodes' recording offsets"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Start NODES real daemons on this machine, let the attackers do their worst, stop them all,
    and write OUT/summary.json (convergence, bans, gossip propagation, /compress throughput)."""
    from .node.cluster import ClusterConfig, ClusterError, run_cluster

    cfg = ClusterConfig(nodes=nodes, byzantine=byzantine, attack=attack.value, dataset=dataset.value, rounds=rounds,
                        round_seconds=round_seconds, fanout=fanout, ttl=ttl, seed=seed)
    try:
        cfg.check()
    except ValueError as exc:
        _fail(str(exc))
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=console, transient=True) as bar:
        task = bar.add_task("starting nodes", total=nodes)

        def tick(stage: str, done: int, total: int) -> None:
            bar.update(task, description="starting nodes" if stage == "starting" else "rounds", completed=done, total=total)

        try:
            summary = run_cluster(cfg, out_dir, tick)
        except (ClusterError, OSError) as exc:
            _fail(str(exc))
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(_summary_table({k: v for k, v in summary.items() if k != "honest_counters"}, cfg.title))
    console.print(f"summary written to {Path(out_dir) / 'summary.json'}")


@app.command("datasets")
def datasets_command(
    name: Optional[str] = typer.Argument(None, help="a bundled recording to copy out (default: list them all)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="where to copy NAME's CSV (default: NAME.csv here)"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite OUTPUT if it exists"),
) -> None:
    """List the bundled sensor recordings, or copy one out as a CSV file to try the other commands on."""
    if name is None:
        t = RichTable(title="bundled recordings (qres datasets NAME copies one out)")
        for col in ("name", "rows", "value columns", "what it is", "source"):
            t.add_column(col)
        for info in datasets.provenance():
            t.add_row(info["name"], f"{info['rows']:,}", ", ".join(info["value_columns"]), info["note"], info["source"])
        out.print(t)
        return
    if name not in datasets.names():
        _fail(f"no bundled recording {name!r}; bundled: {', '.join(datasets.names())}", 2)
    output = output or Path(f"{name}.csv")
    try:
        atomic.write_bytes(output, datasets.path(name).read_bytes(), overwrite=force)
    except atomic.OutputExists as exc:
        _fail(str(exc), 2)
    except OSError as exc:
        _fail(f"{output}: not written: {exc.strerror or exc}")
    console.print(f"wrote {output}")


@app.command()
def demo() -> None:
    """Compress every bundled dataset through the CLI path, check the round trip, compare with the peers."""
    from . import benchmark

    t = RichTable(title="QRES on the bundled recordings (lossless, bits per value)")
    for col in ("dataset", "CSV bytes", ".qres bytes", "qres", "best peer", "qres / best", "round trip"):
        t.add_column(col)
    res = benchmark.run(modes=("lossless",), progress=None)
    with tempfile.TemporaryDirectory() as tmp:
        for name in datasets.names():
            src = datasets.path(name)
            table = read_csv(src)
            channels, errors, extra = table_to_columns(table, None)
            data = compress_columns(channels, extra=extra)
            back, manifest = decompress_columns(data)
            dst = Path(tmp) / f"{name}.csv"
            write_csv(columns_to_table(back, manifest["extra"]), dst)
            same = dst.read_text() == src.read_text()
            r = res["lossless"]["datasets"][name]
            t.add_row(
                name, f"{src.stat().st_size:,}", f"{len(data):,}", f"{r['qres']:.2f}",
                f"{r['best_peer_bpv']:.2f} ({r['best_peer']})", f"{r['ratio']:.3f}", "identical" if same else "[red]differs[/red]",
            )
    out.print(t)
    out.print(f"geometric mean of qres / best peer: {res['lossless']['geomean_ratio']:.3f} (peers: {', '.join(res['lossless']['peers'])})")
    missing = [p for p in res["lossless"]["unavailable"] if not p.startswith("qres-raas")]
    if missing:
        out.print(f"not compared, not installed: {', '.join(missing)} (pip install 'qres[bench]' adds them)")
    from .swarm.simulator import SimConfig

    cfg = SimConfig(nodes=100, rounds=40, byzantine=0.3, attack="bias")
    swarm = _run_sim(cfg)
    from .swarm.report import run_title

    out.print(_summary_table(swarm.summary, run_title(swarm.summary), figures=True))


def main(argv: Optional[list[str]] = None) -> None:
    """The `qres` command. Every error is one line on stderr: exit code 2 for a usage error, 1 for
    anything else, 130 when interrupted; a traceback (without local variables) only with --debug."""
    try:
        code = app(args=argv, prog_name="qres", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError:  # typer has printed the help
        code = 2
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _say_error(f"{exc.format_message()}{where}")
        code = 2
    except click.ClickException as exc:
        _say_error(exc.format_message())
        code = exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        code = 130
    except Exception as exc:  # a bug, or an error no command expected: one line, never the locals
        if _debug or "--debug" in (argv if argv is not None else sys.argv):
            traceback.print_exception(exc)
        _say_error(f"{type(exc).__name__}: {exc} (an unexpected error; run again with --debug for its traceback)")
        code = 1
    if code == 130:  # Ctrl-C inside a command (typer turns it into exit code 130)
        _say_error("interrupted")
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
