"""Throughput of zoo against keras-hub, measured in the same process run.

``python -m benchmarks.run`` (see ``benchmarks/README.md``) trains zoo's
models and their keras-hub counterparts on the same corpus, vocabulary,
model size, sequence length and global batch, alternating the two, and
writes a table and a JSON results file.
"""
