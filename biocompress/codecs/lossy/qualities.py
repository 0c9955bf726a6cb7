"""The lossy qualities (light to import: settings are checked before torch is loaded).

Compressing a recording, quality 1…5 names a PRDN target (``QUALITY_PRDN``): no data channel's
PRDN above it, reached by rate control as ``--max-prdn`` does, on any recording. The targets span
what the shipped model gave at its fixed steps on the validation subjects (eegmat 12-14, PRDN
pooled over channels: ≈ 21, 12, 7, 4.4, 3.3 %), made per channel and rounded to 20, 10, 5, 2.5, 1 %.

A live stream is coded in one pass, without rate control: there quality 1…5 → the autoencoder's
latent step relative to the channels' RMS (``QUALITY_STEPS``; quality 5 of integer-coded channels
takes a bounded residual instead: stream.plans.QUALITY_BOUND).
"""

QUALITY_STEPS = {1: 15.0, 2: 6.5, 3: 3.0, 4: 1.3, 5: 0.3}
QUALITY_PRDN = {1: 20.0, 2: 10.0, 3: 5.0, 4: 2.5, 5: 1.0}
