"""The archive fuzzer's parts (``pipelines/fuzz.py`` runs them; ``tests/test_fuzz.py`` runs a slice).

- ``h5map``: which HDF5 object each byte of an archive belongs to;
- ``targets``: clean archives of every kind and what reading them gives;
- ``mutate``: damaged copies, weighted towards the small metadata regions;
- ``operations``: what a user runs on an archive, and how each outcome is classified;
- ``worker``: long-lived worker processes with a watchdog and a memory watch;
- ``crafted``: hostile archives that declare huge sizes;
- ``campaign``: mutants × operations → rows, summaries.
"""
