"""Side-by-side benchmarks against external codecs (lossless; helpers for the pipelines)."""

import csv


def write_rows_csv(path, rows: list[dict]) -> None:
    """One CSV row per dict, columns from the first row."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
