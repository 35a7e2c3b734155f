"""TensorFlow's caching (BFC) allocator for host memory, chosen by default when zoo is imported.

By default TensorFlow gives the memory of a large CPU tensor back to the
kernel when the tensor dies. A training step makes and drops the same
large tensors every time (activations, their gradients, logits), so each
new one starts on fresh pages, which fault in and are zeroed on their
first write: an op that writes a new 128 MiB tensor runs at the speed of
the page faults, not of memory. On the 2-core machine of
``benchmarks/RESULTS.md`` an elementwise add over 128 MiB took 115-120 ms
and 33,345 minor page faults (one per 4 KiB page) this way, and 44-55 ms
and 576 faults with the caching allocator; the ``small`` BERT masked LM's
float32 training step took 0.85 of its time, GPT's 0.79.

TensorFlow's best-fit-with-coalescing allocator (the one it uses for GPU
memory) keeps the memory it has grown to and hands it out again, so a
step reuses pages that are already mapped. TensorFlow chooses it for the
CPU when the environment variable ``TF_CPU_ALLOCATOR_USE_BFC`` is true
when its CPU device is first used. :func:`prefer_caching_allocator` sets
that default, and the allocator's limit to the machine's physical memory
(TensorFlow's own default limit is 64 GiB), unless the user has set
either; ``import zoo`` calls it. The cost is memory the process keeps
after its peak: the resident size stays near the step's peak instead of
shrinking between steps (GPT above: 2.6 GB against 2.2 GB at most).

To keep TensorFlow's default, set ``TF_CPU_ALLOCATOR_USE_BFC=false``
before importing zoo. The choice has no effect if TensorFlow has already
placed a tensor on the CPU when zoo is imported; :func:`caching_allocator_active`
says which allocator the process has.
"""

from __future__ import annotations

import os
from typing import MutableMapping

#: TensorFlow's switch for the CPU allocator, read once, when the CPU device is first used.
USE_CACHING_ALLOCATOR = "TF_CPU_ALLOCATOR_USE_BFC"
#: The caching allocator's limit in MiB (TensorFlow's default: 65536).
CACHING_ALLOCATOR_LIMIT_MB = "TF_CPU_BFC_MEM_LIMIT_IN_MB"


def prefer_caching_allocator(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Default TensorFlow's CPU allocator to its caching one, limited to physical memory; return whether it is chosen.

    Variables already in `environ` are left as they are.

    Example:
        >>> environ = {}
        >>> prefer_caching_allocator(environ), environ["TF_CPU_ALLOCATOR_USE_BFC"]
        (True, 'true')
        >>> prefer_caching_allocator({"TF_CPU_ALLOCATOR_USE_BFC": "false"})
        False
    """
    environ.setdefault(USE_CACHING_ALLOCATOR, "true")
    limit = _physical_memory_mb()
    if limit is not None:
        environ.setdefault(CACHING_ALLOCATOR_LIMIT_MB, str(limit))
    return environ[USE_CACHING_ALLOCATOR].lower() in ("1", "true")  # as TensorFlow reads it


def caching_allocator_active() -> bool:
    """Whether this process's TensorFlow CPU allocator is the caching one (it keeps statistics; the default does not).

    Example:
        >>> import zoo
        >>> isinstance(caching_allocator_active(), bool)
        True
    """
    import tensorflow as tf

    try:
        tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:
        return False
    return True


def _physical_memory_mb() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError, AttributeError):
        return None
