"""Local stand-ins for the outside services walletsvc talks to, for tests and benchmarks."""
