"""Side-by-side lossless benchmark against external codecs."""
