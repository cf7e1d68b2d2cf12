"""Prefect flows over the `seed` library: `flows.pipeline` (the flow), `flows.workspace` (its paths and
configs), `flows.cli` (`seed run`, `seed serve`).

Nothing is imported here, so that `flows.cli` can set Prefect's environment before Prefect loads.
"""
