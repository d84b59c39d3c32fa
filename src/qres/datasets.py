"""The bundled sensor recordings (package data `qres/data`): names, paths and their value channels.

Each dataset is one CSV file shipped inside the package (so a wheel installed anywhere has them);
`PROVENANCE.json` beside it says where it came from. A *value channel*
is a column of sensor readings (not a time, label or recording-id column). `exact_integers` gives a
channel as the peers in src/qres/data/README.md measured it: the integers value * 10^d, where d is the largest
number of decimals the column's text uses.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path

import numpy as np

# Value channels per dataset, as src/qres/data/README.md counts them.
VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "daphnet_accel": ("ankle_x", "ankle_y", "ankle_z", "thigh_x", "thigh_y", "thigh_z", "trunk_x", "trunk_y", "trunk_z"),
    "heartpy_ppg": ("ppg",),
    "seattle_temps": ("temp_f",),
    "occupancy": ("temperature_c", "humidity_pct", "light_lux", "co2_ppm"),
    "waterflow": ("flow_lps",),
    "basicmotions": ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"),
    "taylor_electricity": ("demand_mw",),
}


def data_dir() -> Path:
    """The folder holding the bundled CSV files (package data, read through importlib.resources)."""
    folder = resources.files("qres") / "data"
    if not isinstance(folder, Path) or not (folder / "PROVENANCE.json").is_file():
        raise FileNotFoundError(f"the bundled recordings are missing from the installed package ({folder}): reinstall qres")
    return folder


def provenance() -> list[dict]:
    """Per bundled dataset, in `names()` order: name, rows, value columns, what it is (note) and
    where it came from (source), from PROVENANCE.json."""
    entries = json.loads((data_dir() / "PROVENANCE.json").read_text())
    return [
        {"name": n, "rows": entries[n]["rows"], "value_columns": list(VALUE_COLUMNS[n]), "note": entries[n]["note"], "source": entries[n]["source"]}
        for n in names()
    ]


def names() -> list[str]:
    """Names of the bundled datasets, in a stable order."""
    return list(VALUE_COLUMNS)


def path(name: str) -> Path:
    """Path of the CSV file of dataset `name`."""
    if name not in VALUE_COLUMNS:
        raise KeyError(f"unknown dataset {name!r}; bundled: {', '.join(VALUE_COLUMNS)}")
    return data_dir() / f"{name}.csv"


@dataclass(frozen=True)
class Channel:
    """One value channel: its text cells, the decimals d and the exact integers value * 10^d."""

    name: str
    decimals: int
    exact_integers: np.ndarray  # int64

    @property
    def values(self) -> np.ndarray:
        """The readings as the CSV states them: int64 when d == 0, else float64 parsed from the text."""
        if self.decimals == 0:
            return self.exact_integers.copy()
        return self.exact_integers / float(10**self.decimals)


def _exact(cells: list[str]) -> tuple[int, np.ndarray]:
    parsed = [Decimal(c) for c in cells]
    decimals = max(0, max(-d.as_tuple().exponent for d in parsed))
    return decimals, np.array([int(d.scaleb(decimals)) for d in parsed], dtype=np.int64)


def channels(name: str) -> list[Channel]:
    """The value channels of dataset `name`, in column order."""
    with open(path(name), newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for col in VALUE_COLUMNS[name]:
        decimals, ints = _exact([row[col] for row in rows])
        out.append(Channel(col, decimals, ints))
    return out


def read_channel(csv_path: str | Path, column: str | None = None) -> Channel:
    """One numeric column of any CSV file with a header row (default: the first column whose cells
    are all numbers) as a Channel; ValueError naming the file, column or row when there is none."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{csv_path}: no data rows under a header")
    candidates = [column] if column is not None else list(rows[0])
    if column is not None and column not in rows[0]:
        raise ValueError(f"{csv_path}: no column {column!r} (columns: {', '.join(rows[0])})")
    for col in candidates:
        try:
            decimals, ints = _exact([row[col] for row in rows])
        except (ArithmeticError, TypeError, ValueError):  # decimal.InvalidOperation is an ArithmeticError
            if column is not None:
                bad = next(i for i, row in enumerate(rows) if not _is_number(row[col]))
                raise ValueError(f"{csv_path}: column {col!r}, data row {bad + 1}: {rows[bad][col]!r} is not a number") from None
            continue
        return Channel(col, decimals, ints)
    raise ValueError(f"{csv_path}: no column holds only numbers")


def _is_number(cell: str | None) -> bool:
    try:
        return cell is not None and Decimal(cell).is_finite()
    except ArithmeticError:
        return False


def values(name: str) -> np.ndarray:
    """All value channels of dataset `name` as one (samples, channels) array, float64 unless all are integer."""
    chans = channels(name)
    if all(c.decimals == 0 for c in chans):
        return np.stack([c.exact_integers for c in chans], axis=1)
    return np.stack([c.values for c in chans], axis=1)
