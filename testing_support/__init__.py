"""
What the tests (tests/) and the benchmarks (bench/) both use: stand-ins and wrappers
around the real executor and store, and the few steps of serving on loopback.

It imports neither tests nor bench, so either may import it; what only the tests
use stays in tests/ (fixtures in the conftest files, helpers beside them).
"""
