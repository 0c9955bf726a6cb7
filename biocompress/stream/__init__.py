"""The chunk pipeline shared by files and live streams.

A *source* yields chunks of samples (every channel, consecutive windows); *lanes*
turn the channels they own into coded blocks; the :class:`~.encoder.StreamEncoder`
runs the lanes (encoding on worker processes where that pays) and hands the blocks,
in order, to a *sink*: an archive file, a network sender, or both.
"""
