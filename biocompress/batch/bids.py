"""Keeping a BIDS dataset valid while its recordings change names.

Sidecars (``*_eeg.json``, ``*_channels.tsv``, ``*_events.tsv`` …) are copied as they are;
two files name the recordings and are rewritten: each ``*_scans.tsv`` (its ``filename``
column follows the new names) and ``dataset_description.json``, which records the
conversion (``DatasetType`` "derivative", a ``GeneratedBy`` entry for biocompress with its
version and what it did). The original description is kept in the destination's state
folder, so that a restore gives it back as it was.
"""

from __future__ import annotations

import json
import posixpath

from .._version import __version__

DESCRIPTION = "dataset_description.json"
GENERATOR = "biocompress"


def is_bids(root) -> bool:
    return (root / DESCRIPTION).is_file()


def is_scans(rel: str) -> bool:
    return rel.rsplit("/", 1)[-1].endswith("_scans.tsv")


def rewritten(rel: str) -> bool:
    """Whether a BIDS file is written anew by the batch rather than copied."""
    return rel == DESCRIPTION or is_scans(rel)


def rename_scans(text: str, scans_rel: str, new_names: dict[str, str]) -> str:
    """``text`` of a scans file at ``scans_rel`` with its ``filename`` entries renamed through
    ``new_names`` (source path → output path, both relative to the dataset root). Everything
    else (other columns, line ends) is kept byte for byte."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    header = lines[0].rstrip("\r\n").split("\t")
    if "filename" not in header:
        return text
    col = header.index("filename")
    folder = posixpath.dirname(scans_rel)
    out = [lines[0]]
    for line in lines[1:]:
        body = line.rstrip("\r\n")
        end = line[len(body):]
        cells = body.split("\t")
        if col < len(cells):
            target = new_names.get(posixpath.normpath(posixpath.join(folder, cells[col])))
            if target is not None:
                cells[col] = posixpath.relpath(target, folder or ".")
        out.append("\t".join(cells) + end)
    return "".join(out)


def describe_conversion(text: str, what: str, dataset_type: str | None = "derivative") -> str:
    """A dataset description recording what biocompress did (``what``), replacing an entry an
    earlier conversion left. ``dataset_type``: the DatasetType to set (None: remove the key)."""
    desc = json.loads(text)
    if not isinstance(desc, dict):
        raise ValueError("dataset_description.json does not hold a JSON object")
    generated = [g for g in desc.get("GeneratedBy") or [] if not (isinstance(g, dict) and g.get("Name") == GENERATOR)]
    if what:
        generated.append({"Name": GENERATOR, "Version": __version__, "Description": what})
    if generated:
        desc["GeneratedBy"] = generated
    else:
        desc.pop("GeneratedBy", None)
    if dataset_type is None:
        desc.pop("DatasetType", None)
    else:
        desc["DatasetType"] = dataset_type
    return json.dumps(desc, indent=4, ensure_ascii=False) + "\n"
