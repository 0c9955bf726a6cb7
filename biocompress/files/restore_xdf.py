"""An XDF file's archive given back as an XDF file.

Every stream comes back with its samples in the file's own format, its timestamps, clock
offsets and markers exactly, and the file header and every stream header and footer XML
verbatim. The chunks are the writer's own (samples of all streams merged in time order, no
Boundary chunks), so the file is equivalent to the original, not the same bytes: it is read
back with pyxdf and compared with the archive, stream by stream, before it gets its name.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..container.reader import Archive
from ..container.streams import MARKERS
from ..errors import BadInputError, VerificationError
from ..io.xdf import read_xdf
from ..io.xdf_write import StreamToWrite, write_xdf
from ..system.outputs import temporary
from .verify_xdf import compare


def is_xdf_archive(arc: Archive) -> bool:
    return "xdf_header" in arc.source


def restore_xdf(archive, output: Path) -> dict:
    """Write the XDF file the archive holds to ``output`` (checked by the caller), compared
    with the archive before it is renamed into place."""
    with Archive(archive) as arc:
        if not is_xdf_archive(arc):
            raise BadInputError(archive, "this archive was not made from an XDF file; restore it to a recording "
                                "format (.fif, .edf, ...) instead")
        header = arc.source["xdf_header"].encode("utf-8")
        streams = [_stream(arc, entry) for entry in arc.streams]
    streams.sort(key=lambda s: s[0])
    tmp = temporary(output)
    try:
        with open(tmp, "wb") as f:
            write_xdf(f, header, [s for _, s in streams])
        ok, lines = compare(archive, read_xdf(tmp))
        if not ok:
            raise VerificationError(f"{output}: the XDF file written differs from the archive ("
                                    + "; ".join(line for line in lines if "DIFFER" in line or "MISSING" in line)
                                    + "); nothing written")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, output)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {"path": output, "method": "xdf", "exact": "streams", "n_streams": len(streams), "lines": lines}


def _stream(arc: Archive, entry) -> tuple[int, StreamToWrite]:
    if entry.kind == MARKERS:
        m = arc.stream(entry.index)
        head, values, stamps, clock = m.header, m.strings, m.timestamps, m.clock_offsets
    else:
        with Archive(arc.path, stream=None if entry.main else entry.index) as s:
            head, values, stamps, clock = s.stream_header, s.source_values(), s.timestamps(), s.clock_offsets
    footer = head.get("footer_xml")
    return entry.index, StreamToWrite(
        stream_id=int(head["stream_id"]), header_xml=head["header_xml"].encode("utf-8"),
        channel_format=head["channel_format"], nominal_srate=float(head["nominal_srate"]),
        channel_count=int(head["channel_count"]), values=values, timestamps=stamps,
        clock_times=None if clock is None else clock[:, 0], clock_values=None if clock is None else clock[:, 1],
        footer_xml=None if footer is None else footer.encode("utf-8"))
