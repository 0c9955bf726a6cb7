"""Side-by-side benchmarks against external codecs (lossless; helpers for the pipelines)."""

import csv


def write_rows_csv(path, rows: list[dict]) -> None:
    """One CSV row per dict; the columns: every key, in the order first seen (blank where a row lacks one)."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        w.writeheader()
        w.writerows(rows)
