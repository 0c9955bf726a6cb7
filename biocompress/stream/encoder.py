"""The stream encoder: runs the lanes over a stream of chunks and yields blocks in order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..codecs.fallback import smaller_of
from ..codecs.pool import BlockPool
from .blocks import Block, Chunk, EncodeJob
from .lanes import Lane


class StreamEncoder:
    """Lanes over chunks → blocks, in the order the lanes produce them.

    Encode jobs run on ``pool`` (a :class:`~biocompress.codecs.pool.BlockPool`; None: here,
    at once), with a bounded number in flight; blocks that stream lanes coded themselves
    keep their place in the order.

    Files use :meth:`encode` (the whole stream); live streams :meth:`push`, :meth:`flush`
    and :meth:`finish`, which encode here and return what is complete.
    """

    def __init__(self, lanes: list[Lane], pool: BlockPool | None = None):
        self.lanes = lanes
        self.pool = pool
        self._codecs: dict[str, object] = {}  # live streams code many small blocks: one codec per config

    def encode(self, chunks: Iterable[Chunk]) -> Iterator[Block]:
        def items():
            for chunk in chunks:
                for lane in self.lanes:
                    yield from lane.push(chunk)
            for lane in self.lanes:  # the last window's samples first, then what lanes keep to the end
                yield from lane.flush()
            for lane in self.lanes:
                yield from lane.finish()

        if self.pool is None:
            for item in items():
                yield self._done(item)
            return
        for item, payload in self.pool.encode_stream((item, *_work(item)) for item in items()):
            yield item if isinstance(item, Block) else _block(item, payload)

    def push(self, chunk: Chunk) -> list[Block]:
        return [self._done(item) for lane in self.lanes for item in lane.push(chunk)]

    def flush(self) -> list[Block]:
        return [self._done(item) for lane in self.lanes for item in lane.flush()]

    def finish(self) -> list[Block]:
        return [self._done(item) for lane in self.lanes for item in lane.finish()]

    def _done(self, item: Block | EncodeJob) -> Block:
        if isinstance(item, Block):
            return item
        key = repr(sorted(item.config.items()))
        codec = self._codecs.get(key)
        if codec is None:
            from ..codecs import get_codec

            codec = self._codecs[key] = get_codec(item.config)
        return _block(item, codec.encode(item.codes))


def _work(item: Block | EncodeJob):
    """(codec config, codes) to encode, or (None, payload) for a block already coded."""
    return (item.config, item.codes) if isinstance(item, EncodeJob) else (None, item.payload)


def _block(job: EncodeJob, payload: bytes) -> Block:
    config, payload = smaller_of(job.config, job.codes, payload)
    return Block(job.t_start, job.t_stop, job.ch_start, job.ch_stop, config, payload, job.section)


