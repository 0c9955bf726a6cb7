"""The chunk pipeline shared by files and live streams.

A *source* yields chunks of samples (every channel, consecutive windows); *lanes*
turn the channels they own into coded blocks; the :class:`~.encoder.StreamEncoder`
runs the lanes (encoding on worker processes where that pays) and hands the blocks,
in order, to a *sink*: an archive file, a network sender, or both.

Files: :mod:`.sources` (``raw_chunks``) through ``biocompress.compress``. Live streams:
:mod:`.lsl` (an LSL inlet) or :class:`.sources.ArraySource` (a program's own chunks),
through the :class:`.live.Recorder`, into :mod:`.sinks`; :mod:`.record` has the Python
API (``record``, ``compress_chunks``), :mod:`.replay` publishes a recording as an LSL stream.
"""
