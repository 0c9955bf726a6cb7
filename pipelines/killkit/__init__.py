"""The kill campaign's parts (``pipelines/kill_campaign.py`` runs them).

- ``proctree``: the process table from /proc (descendants, sessions, liveness);
- ``runs``: one ``compress`` run watched, its phase told, and signalled at a moment.
"""
