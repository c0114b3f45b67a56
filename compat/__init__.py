"""Older Prefect servers for the compatibility run and the version tests.

Each Prefect release in the matrix gets its own virtual environment, built from the package
index with the dependency holds it needs today (one constraints file per version, in
`compat/constraints/`), cached under ~/.cache/concurrency-bot so a second run is fast.
"""
