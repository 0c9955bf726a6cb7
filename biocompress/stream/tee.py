"""One stream into several sinks: e.g. the live archive on this machine and a network sender."""

from __future__ import annotations

from ..errors import BiocompressError


class TeeSink:
    """Hands every call to each of ``sinks``, in order (any sink interface: the live pipeline's
    :class:`~.sinks.Sink`, or the frame sinks' ``add``/``add_markers``/``close(**digests)``).

    ``optional``: sinks whose own failure (a BiocompressError, e.g. the network gone for
    longer than the sender's buffer lasts) must not stop the others: such a sink is dropped
    (``abort()`` or ``discard()`` where it has one), the others get a note saying why (kept in
    the archive's provenance), and ``dropped`` lists it with its error. A failure in
    :meth:`start`, or of any other sink, propagates once every sink has had the call.
    """

    def __init__(self, *sinks, optional=()):
        self.sinks = list(sinks)
        self.optional = [s for s in optional if any(s is t for t in self.sinks)]
        self.dropped: list[tuple[object, BaseException]] = []

    def _each(self, method: str, *args, droppable: bool = True, **kwargs) -> list:
        results, error = [], None
        for sink in list(self.sinks):
            try:
                results.append(getattr(sink, method)(*args, **kwargs))
            except BiocompressError as exc:
                if droppable and any(sink is s for s in self.optional):
                    self._drop(sink, exc)
                elif error is None:
                    error = exc
            except BaseException as exc:  # noqa: BLE001 - raised once the others had the call
                if error is None:
                    error = exc
        if error is not None:
            raise error
        return results

    def _drop(self, sink, exc: BaseException) -> None:
        self.sinks = [s for s in self.sinks if s is not sink]
        self.dropped.append((sink, exc))
        for other in self.sinks:
            try:
                other.note(f"a copy of this stream stopped: {exc}")
            except BaseException:  # noqa: BLE001 - its own failure shows on the next call
                pass
        stop = getattr(sink, "abort", None) or getattr(sink, "discard", None)
        if stop is not None:
            try:
                stop()
            except BaseException:  # noqa: BLE001 - it is gone either way
                pass

    def start(self, *args, **kwargs) -> None:
        self._each("start", *args, droppable=False, **kwargs)

    def add(self, *args, **kwargs) -> None:
        self._each("add", *args, **kwargs)

    def add_times(self, *args, **kwargs) -> None:
        self._each("add_times", *args, **kwargs)

    def add_markers(self, *args, **kwargs) -> None:
        self._each("add_markers", *args, **kwargs)

    def add_clock(self, *args, **kwargs) -> None:
        self._each("add_clock", *args, **kwargs)

    def note(self, text: str) -> None:
        self._each("note", text)

    def flush(self) -> None:
        self._each("flush")

    def close(self, *args, **kwargs):
        """Close every sink (each with the same arguments: the pipeline's ``end``, or a frame sink's
        digests); the first path any returns."""
        return next((r for r in self._each("close", *args, **kwargs) if r is not None), None)

    def discard(self) -> None:
        self._each("discard", droppable=False)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        error = None
        for sink in list(self.sinks):
            try:
                sink.__exit__(exc_type, exc, tb)
            except BaseException as failure:  # noqa: BLE001 - every sink gets its exit first
                optional = any(sink is s for s in self.optional)
                if error is None and not (optional and isinstance(failure, BiocompressError)):
                    error = failure
        if error is not None and exc is None:
            raise error
        return False
