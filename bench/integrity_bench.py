"""Integrity benchmark: how often damaged QRES data decodes silently to wrong values.

Damage is single-bit flips and bursts of 2 to 32 bits at random places, and (for files) every cut
of the file. Each damaged copy is decoded once; the outcome is "refused" (a QRES error), "same"
(the damage touched nothing that is decoded, e.g. an ignored id byte) or "silent" (wrong values
came back). docs/FORMAT.md states the rates this measures:

  files (checksum on, the default)   a CRC32 of the blocks: no single flip, burst of up to 32 bits
                                     or cut may pass
  files with checksum=False, frames  each block's 16-bit check: about 2^-16 (1.5e-5) of damaged
                                     blocks pass

Writes bench/results/integrity.json and the section between `<!-- integrity:begin -->` and
`<!-- integrity:end -->` in docs/BENCHMARKS.md.

    python bench/integrity_bench.py                 # about 1.5 million damaged copies (a few minutes)
    python bench/integrity_bench.py --trials 100000 # a quicker run
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

import qres  # noqa: E402
from qres import datasets  # noqa: E402
from qres.benchmark import update_markdown_section  # noqa: E402

BEGIN, END = "<!-- integrity:begin -->", "<!-- integrity:end -->"
REFUSED = (qres.QresFormatError, qres.QresModelMismatch, qres.QresAuthError)
FILE_ROWS = 1000  # rows of each dataset in a damaged file
FRAME = 64


def damage(data: bytes, rng: np.random.Generator) -> bytes:
    """A copy of `data` with one single-bit flip (half the time) or one burst of 2..32 bits."""
    width = 1 if rng.random() < 0.5 else int(rng.integers(2, 33))
    pattern = 1 if width == 1 else int(rng.integers(0, 2**width)) | 1 | 1 << (width - 1)
    start = int(rng.integers(0, max(1, 8 * len(data) - width + 1)))
    flipped = int.from_bytes(data, "little") ^ (pattern << start)
    return flipped.to_bytes(len(data), "little")


def outcome(decode, damaged: bytes, original: np.ndarray) -> str:
    """"refused" (a QRES error), "same" (the damage changed nothing decoded) or "silent" (wrong values)."""
    try:
        got = decode(damaged)
    except REFUSED:
        return "refused"
    same = got.shape == original.shape and got.dtype == original.dtype and np.array_equal(
        np.ascontiguousarray(got).view(np.uint8), np.ascontiguousarray(original).view(np.uint8)
    )
    return "same" if same else "silent"


def samples() -> tuple[list[tuple[np.ndarray, bytes, bytes]], list[tuple[qres.Codec, np.ndarray, bytes]]]:
    """Per bundled dataset: (values, file with CRC32, file without) and a few 64-row frames."""
    files, frames = [], []
    for name in datasets.names():
        v = datasets.values(name)
        x = v[:FILE_ROWS]
        files.append((x, qres.compress(x), qres.compress(x, checksum=False)))
        cut = len(v) // 5
        codec = qres.Codec(qres.Model.fit(v[:cut]))
        for s in range(cut, min(len(v) - FRAME, cut + 8 * FRAME) + 1, FRAME):
            frames.append((codec, v[s : s + FRAME], codec.encode_frame(v[s : s + FRAME])))
    return files, frames


def tally(trials) -> dict:
    counts = {"refused": 0, "same": 0, "silent": 0}
    for result in trials:
        counts[result] += 1
    damaged = counts["refused"] + counts["silent"]
    counts["trials"] = sum(counts[k] for k in ("refused", "same", "silent"))
    counts["silent_rate"] = counts["silent"] / max(damaged, 1)
    counts["rate_upper_95"] = upper95(counts["silent"], damaged)
    return counts


def upper95(k: int, n: int) -> float:
    """One-sided 95% upper bound of a rate seen k times in n trials (exact for k = 0: 3/n rule; else
    a normal approximation of the Poisson bound)."""
    if n == 0:
        return 1.0
    if k == 0:
        return -math.log(0.05) / n
    return (k + 1.645 * math.sqrt(k) + 1.35) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1_000_000, help="damaged frames to decode (files get a fifth of that)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "integrity.json")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    files, frames = samples()

    def crc_trials():
        for x, data, _ in files:
            for cut in range(len(data)):
                yield outcome(qres.decompress, data[:cut], x)
            for _ in range(args.trials // 5 // len(files)):
                yield outcome(qres.decompress, damage(data, rng), x)

    def plain_trials():
        for x, _, data in files:
            for _ in range(args.trials // 5 // len(files)):
                yield outcome(qres.decompress, damage(data, rng), x)

    def frame_trials():
        for i in range(args.trials):
            codec, block, frame = frames[i % len(frames)]
            yield outcome(codec.decode_frame, damage(frame, rng), block)

    results = {}
    for name, gen in (("files_crc32", crc_trials), ("files_no_checksum", plain_trials), ("frames_64", frame_trials)):
        results[name] = tally(gen())
        print(f"[{time.perf_counter() - t0:7.1f}s] {name}: {results[name]}", flush=True)
    results["meta"] = {
        "qres": qres.__version__, "seed": args.seed, "file_rows": FILE_ROWS, "frames": len(frames),
        "mean_file_bytes": round(float(np.mean([len(f[1]) for f in files])), 1),
        "mean_frame_bytes": round(float(np.mean([len(f[2]) for f in frames])), 1), "stated_rate": 2.0**-16,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(args.out)
    update_markdown_section(args.doc, render(results), begin=BEGIN, end=END)
    print(f"wrote {args.out} and updated {args.doc} in {time.perf_counter() - t0:.0f} s")
    return 0


def render(results: dict) -> str:
    m = results["meta"]
    rows = [
        ("files, checksum on (default)", "CRC32: none", results["files_crc32"]),
        ("files, `checksum=False`", "16-bit check: 2^-16 = 1.5e-5", results["files_no_checksum"]),
        ("64-value frames", "16-bit check: 2^-16 = 1.5e-5", results["frames_64"]),
    ]
    out = [
        "## Integrity: damaged data that decodes silently",
        "",
        f"Generated by `python bench/integrity_bench.py` (raw figures in `bench/results/integrity.json`). Each bundled "
        f"recording's first {m['file_rows']:,} rows as a file (mean {m['mean_file_bytes']:,} bytes) and {m['frames']} frames of "
        f"64 rows (mean {m['mean_frame_bytes']} bytes) were damaged at random: half single-bit flips, half bursts of 2 to 32 "
        "bits; files were also cut at every byte. *Silent* means wrong values came back without an error; the rate is "
        "per damaged copy that changed something decoded (copies that decode to the same values, e.g. a flip in an "
        "ignored id byte, are counted apart).",
        "",
        "| data | stated miss rate (docs/FORMAT.md) | damaged copies | refused | unchanged | silent | silent rate | 95% upper bound |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, stated, r in rows:
        out.append(
            f"| {label} | {stated} | {r['trials']:,} | {r['refused']:,} | {r['same']:,} | {r['silent']:,} | "
            f"{r['silent_rate']:.2e} | {r['rate_upper_95']:.2e} |"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
