"""Offline meeting transcriber."""

import os

# oneDNN (torch's CPU backend for GELU, convolutions and the LSTM) keeps every
# primitive it compiles in a cache keyed by tensor shape, 1024 entries by default.
# The encoder's input length changes at every streaming step, so the cache fills
# with one-off shapes, and its long-lived entries, scattered between the large
# short-lived activations, fragment the malloc heap: resident memory grew with the
# length of the file (about 0.2 GB per hour). A small cache keeps memory flat at
# no measurable speed cost. oneDNN reads this once, at its first primitive, so it
# must be set before any torch op runs; an explicit setting by the user wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
