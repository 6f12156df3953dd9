"""Two processes filling Numba's on-disk cache of one function at once must not corrupt it (numba/numba#4807).

Numba writes a function's cache index and then its data file, each atomically but not together; two processes
compiling different specialisations at once pick the same data file name. The race is made deterministic here:
both processes run Numba's own ``IndexDataCacheFile.save``, step for step, with hand-offs between the steps
(process A writes the index, then B writes the index and its data, then A its data), which leaves the index
pointing the float64 signature at the int64 machine code. A third process then loads both from the cache.

Without gpukit's lock (``GPUKIT_NUMBA_CACHE_LOCK=0``) that third process silently computes ``f(2.5) == 4``: the
int64 code run on a float. With it, the second save waits for the first (each hand-off then times out), and
the third process loads both specialisations from the cache and gets 6 and 5.0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MODULE = """
from gpukit.backends._jit import njit


@njit(cache=True)
def f(x):
    return x + x
"""

# Numba's IndexDataCacheFile.save (numba/core/caching.py), with the hand-offs that make the race happen
RACER = """
import itertools, os, sys, time
from numba.core import caching

ROLE, SYNC, WAIT = os.environ["ROLE"], os.environ["SYNC"], float(os.environ["WAIT"])
OTHER = "B" if ROLE == "A" else "A"


def mark(name):
    open(os.path.join(SYNC, name), "w").close()


def wait(name):
    end = time.time() + WAIT
    while not os.path.exists(os.path.join(SYNC, name)) and time.time() < end:
        time.sleep(0.01)


def save(self, key, data):
    overloads = self._load_index()
    mark("loaded_" + ROLE)
    wait("loaded_" + OTHER)
    try:
        data_name = overloads[key]
    except KeyError:
        existing = set(overloads.values())
        for i in itertools.count(1):
            data_name = self._data_name(i)
            if data_name not in existing:
                break
        overloads[key] = data_name
        if ROLE == "A":
            self._save_index(overloads)
            mark("A_index")
            wait("B_data")
        else:
            wait("A_index")
            self._save_index(overloads)
    self._save_data(data_name, data)
    if ROLE == "B":
        mark("B_data")


caching.IndexDataCacheFile.save = save
import racemod
print(racemod.f(3) if ROLE == "A" else racemod.f(2.5))
"""

CHECK = """
import racemod
a, b = racemod.f(3), racemod.f(2.5)
print(repr((a, b, sorted(str(s[0]) for s in racemod.f.stats.cache_hits))))
"""


def _race(tmp_path, lock: bool, wait: float):
    (tmp_path / "racemod.py").write_text(MODULE)
    sync = tmp_path / "sync"
    sync.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), SYNC=str(sync), WAIT=str(wait),
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]), GPUKIT_NUMBA_CACHE_LOCK="1" if lock else "0")
    racers = [subprocess.Popen([sys.executable, "-c", RACER], env=dict(env, ROLE=role), cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for role in "AB"]
    outs = [p.communicate(timeout=300) for p in racers]
    for p, (out, err) in zip(racers, outs):
        assert p.returncode == 0, err[-2000:]
    assert [o.strip() for o, _ in outs] == ["6", "5.0"]        # each racer computed its own call right
    r = subprocess.run([sys.executable, "-c", CHECK], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    return r


def test_two_processes_filling_the_cache_at_once_leave_it_correct(tmp_path):
    r = _race(tmp_path, lock=True, wait=2.0)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b, hits = eval(r.stdout.strip().splitlines()[-1])
    assert (a, b) == (6, 5.0)
    assert hits == ["float64", "int64"]          # both came from the cache the racers wrote


def test_the_race_is_real_without_the_lock(tmp_path):
    """The reproduction above must reproduce: without the lock the cache hands out the wrong machine code."""
    if sys.platform == "win32":
        pytest.skip("the lock is flock (POSIX)")
    r = _race(tmp_path, lock=False, wait=60.0)
    assert r.returncode != 0 or eval(r.stdout.strip().splitlines()[-1])[:2] != (6, 5.0), \
        "the unlocked race left a correct cache: the reproduction no longer reproduces"


# Process A compiles f(int64) and, before saving it, marks that it is compiling and waits a while; process B
# asks for the same signature meanwhile. With the compile lock B waits for A and loads A's result from the cache.
SLOW_SAVER = """
import os, sys, time
from numba.core import caching

SYNC = os.environ["SYNC"]
_save = caching.IndexDataCacheFile.save


def save(self, key, data):
    open(os.path.join(SYNC, "A_compiled"), "w").close()
    time.sleep(float(os.environ["HOLD"]))
    return _save(self, key, data)


caching.IndexDataCacheFile.save = save
import racemod
print(racemod.f(3))
"""

LATE = """
import os, time
SYNC = os.environ["SYNC"]
end = time.time() + 120
while not os.path.exists(os.path.join(SYNC, "A_compiled")) and time.time() < end:
    time.sleep(0.01)
import racemod
v = racemod.f(3)
print(repr((v, sorted(str(s[0]) for s in racemod.f.stats.cache_hits),
            sorted(str(s[0]) for s in racemod.f.stats.cache_misses))))
"""


def _same_signature(tmp_path, lock: bool):
    (tmp_path / "racemod.py").write_text(MODULE)
    sync = tmp_path / "sync"
    sync.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), SYNC=str(sync), HOLD="3",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]), GPUKIT_NUMBA_CACHE_LOCK="1" if lock else "0")
    a = subprocess.Popen([sys.executable, "-c", SLOW_SAVER], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    b = subprocess.run([sys.executable, "-c", LATE], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    out_a, err_a = a.communicate(timeout=300)
    assert a.returncode == 0, err_a[-2000:]
    assert b.returncode == 0, b.stderr[-2000:]
    assert out_a.strip() == "6"
    return eval(b.stdout.strip().splitlines()[-1])


def test_a_signature_another_process_is_compiling_is_loaded_not_compiled_again(tmp_path):
    if sys.platform == "win32":
        pytest.skip("the lock is flock (POSIX)")
    value, hits, misses = _same_signature(tmp_path, lock=True)
    assert value == 6
    assert hits == ["int64"] and misses == []       # B waited for A's compile and loaded it from the cache


def test_without_the_compile_lock_both_processes_compile(tmp_path):
    """The check above must be able to fail: without the lock the late process compiles the signature itself."""
    if sys.platform == "win32":
        pytest.skip("the lock is flock (POSIX)")
    value, hits, misses = _same_signature(tmp_path, lock=False)
    assert value == 6
    assert misses == ["int64"] and hits == []
