"""Benchmarks: each `bench_NAME.py` has `main(argv) -> int` and prints a table.

Run one as `shopvec bench NAME -- ARGS` or `python benchmarks/bench_NAME.py ARGS`;
`shopvec bench` lists them. They never gate CI on a time.
"""
