"""Give freed heap memory back to the system while frames pass between threads.

Writing an annotated video, frames are decoded and drawn on one thread and encoded on
another. glibc raises its mmap threshold once the first big block (a 2.7 MB 720p frame) is
freed, so later frames are cut from its heaps, and the heaps kept much of what was freed:
`emolens video -o` on a 5-minute 720p clip reached 852 MiB idle and 1,989 MiB beside other
work, and between 234 and 967 MiB on the same 1-minute clip from run to run.
Limiting the arenas (``MALLOC_ARENA_MAX=2``) did not help; ``malloc_trim`` every
30 frames keeps it at 229-261 MiB, with no cost measurable against the run-to-run spread.
Pinning the mmap threshold also bounds it, but mmaps and zeroes every frame: 40% slower.
"""

from __future__ import annotations

import ctypes
from functools import cache


@cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError, TypeError):  # TypeError: Windows' CDLL(None)
        return None
    return libc


def release_free_heap() -> bool:
    """Return the heaps' free pages to the system (glibc's ``malloc_trim``); False where the C
    library is not glibc (macOS, musl, Windows), whose allocators need no such help here."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
