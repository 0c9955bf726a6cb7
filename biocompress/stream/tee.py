"""One stream into several sinks: e.g. the live archive on this machine and a network sender."""

from __future__ import annotations

from ..errors import BiocompressError


class TeeSink:
    """Hands every call to each of ``sinks``, in order.

    ``optional``: sinks whose own failure (a BiocompressError, e.g. the network gone for
    longer than the sender's buffer lasts) must not stop the others: such a sink is dropped,
    the others get a note saying why (kept in the archive's provenance), and ``dropped``
    lists it with its error. Any other failure propagates once every sink has had the call.
    """

    def __init__(self, *sinks, optional=()):
        self.sinks = list(sinks)
        self.optional = [s for s in optional if s in self.sinks]
        self.dropped: list[tuple[object, BaseException]] = []

    def _each(self, method: str, *args, **kwargs) -> list:
        results, error = [], None
        for sink in list(self.sinks):
            try:
                results.append(getattr(sink, method)(*args, **kwargs))
            except BiocompressError as exc:
                if sink in self.optional:
                    self._drop(sink, exc)
                elif error is None:
                    error = exc
            except BaseException as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error
        return results

    def _drop(self, sink, exc: BaseException) -> None:
        self.sinks.remove(sink)
        self.dropped.append((sink, exc))
        for other in self.sinks:
            try:
                other.note(f"a copy of this stream stopped: {exc}")
            except BaseException:  # noqa: BLE001 - its own failure shows on the next call
                pass
        abort = getattr(sink, "abort", None)
        if abort is not None:
            abort()

    def add(self, block) -> None:
        self._each("add", block)

    def add_times(self, block) -> None:
        self._each("add_times", block)

    def add_markers(self, *args, **kwargs) -> None:
        self._each("add_markers", *args, **kwargs)

    def add_clock(self, time_s: float, offset_s: float) -> None:
        self._each("add_clock", time_s, offset_s)

    def note(self, text: str) -> None:
        self._each("note", text)

    def flush(self) -> None:
        self._each("flush")

    def close(self, **kwargs):
        """Close every sink (each with ``kwargs``, e.g. the samples' digests); the first path any returns."""
        return next((r for r in self._each("close", **kwargs) if r is not None), None)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        error = None
        for sink in list(self.sinks):
            try:
                sink.__exit__(exc_type, exc, tb)
            except BaseException as failure:  # noqa: BLE001 - every sink gets its exit first
                if error is None and not (sink in self.optional and isinstance(failure, BiocompressError)):
                    error = failure
        if error is not None and exc is None:
            raise error
        return False
