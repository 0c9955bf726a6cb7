"""Reading recordings: MNE sources, exact integer/float recovery, metadata."""

from .codes import SourceCodes, read_codes
from .source import open_raw

__all__ = ["SourceCodes", "open_raw", "read_codes"]
