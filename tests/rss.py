"""Resident-set growth of a repeated call, for the memory tests (core and TF)."""

import gc
import os


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_growth(call, warmup=300, calls=3000):
    """Bytes the resident set grows over `calls` calls of call(i), after `warmup` calls (which
    fill allocator pools and caches)."""
    for i in range(warmup):
        call(i)
    gc.collect()
    before = rss_bytes()
    for i in range(calls):
        call(i)
    gc.collect()
    return rss_bytes() - before
