"""The lossy qualities (light to import: settings are checked before torch is loaded).

Quality 1…5 → the autoencoder's latent step relative to the channels' RMS. Calibrated with the
shipped model on the validation subjects (eegmat 12-14): PRDN ≈ 21, 12, 7, 4.4, 3.3 % (quality 5
of integer-coded recordings takes a bounded residual instead: stream.plans.QUALITY_BOUND).
"""

QUALITY_STEPS = {1: 15.0, 2: 6.5, 3: 3.0, 4: 1.3, 5: 0.3}
