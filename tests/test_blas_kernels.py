"""The true-peak screen's row-exact products hold on every BLAS kernel, not only the one this machine picks.

OpenBLAS (numpy's, built DYNAMIC_ARCH) picks its kernels by the CPU and rounds a row's sums differently by
the product's size, differently per kernel (measured with scipy-openblas 0.3.31 on an AVX-512 Xeon: the
SkylakeX kernels read 1 row, 2-3 rows, 4 to ~3,000 rows and more four ways; Haswell's, used for Zen too,
read a row of a 63-column product differently at 6 of every 12 places in a block). The screen takes its
products in blocks of one size (:func:`musicstore.audio.interpolation._product`), so that a row's values do
not depend on the rows read with it, wherever it lies in a block; a CI machine picks a kernel we do not
know, so each kernel this numpy's OpenBLAS has and this CPU can run is checked in a fresh process
(``OPENBLAS_CORETYPE``, read at load time: OpenBLAS takes a forced core as it is, so one whose instructions
the CPU lacks is skipped, not run), with 8 threads (a machine with more cores splits products over the
one-thread size).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

_CHECK = textwrap.dedent(
    """
    import ctypes, json
    import numpy as np
    from musicstore.audio.interpolation import _product
    from musicstore.audio.truepeak import _screen

    def corename():
        try:
            with open("/proc/self/maps") as maps:
                paths = sorted({part for part in maps.read().split() if "openblas" in part})
        except OSError:
            return "unknown"
        for path in paths:
            lib = ctypes.CDLL(path)
            for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                         "openblas_get_corename64_", "openblas_get_corename"):
                function = getattr(lib, name, None)
                if function is not None:
                    function.restype = ctypes.c_char_p
                    return function().decode()
        return "unknown"

    failures = []
    screen = _screen()
    matrix = screen.matrix
    rng = np.random.default_rng(0)
    # one row at every place of products of every size class (the same row throughout: any difference is
    # the kernel's, by the row's place or the product's size)
    for trial in range(8):
        row = (rng.standard_normal(matrix.shape[0]) * 10.0 ** rng.uniform(-3, 0)).astype(np.float32)
        alone = np.empty((1, matrix.shape[1]), dtype=np.float32)
        _product(row[None], matrix, alone, True)
        for count in (1, 2, 3, 4, 5, 17, 767, 768, 769, 1539, 2983, 2984, 5000):
            out = np.empty((count, matrix.shape[1]), dtype=np.float32)
            _product(np.tile(row, (count, 1)), matrix, out, True)
            places = np.flatnonzero((out != alone).any(axis=1))
            if places.size:
                failures.append(f"row {trial} in {count} rows: differs at {places[:8].tolist()}")
    # the screen's readings: each row the same whichever rows are read with it
    audio = (rng.standard_normal((2, 6000)) * 0.3).astype(np.float32)
    samples = audio.shape[1]
    every = screen.peaks(audio, np.arange(samples + 1, dtype=np.int32))
    subsets = {
        "a lone inner row": [2500],
        "a lone end row": [0],
        "two rows": [7, 3001],
        "three rows": [100, 101, 5990],
        "forty rows": rng.choice(samples + 1, 40, replace=False),
        "every other row": np.arange(0, samples + 1, 2),
        "3,000 rows": np.arange(1000, 4000),
    }
    for name, rows in subsets.items():
        some = np.unique(np.asarray(rows)).astype(np.int32)
        if not np.array_equal(screen.peaks(audio, some), every[some]):
            failures.append(f"the screen's reading of {name} differs from the whole clip's")
    print(json.dumps({"core": corename(), "failures": failures}))
    """
)

# the x86-64 cores DYNAMIC_ARCH builds name, with the CPU features (numpy's names) their kernels use
# (scipy-openblas 0.3.31 reads Zen as Haswell and CooperLake as SkylakeX; other builds may not); None: the
# core OpenBLAS picks itself (any machine)
_CORES: dict[str | None, tuple[str, ...]] = {
    None: (),
    "Prescott": ("SSE3",),
    "Nehalem": ("SSE42",),
    "SandyBridge": ("AVX",),
    "Haswell": ("AVX2", "FMA3"),
    "Zen": ("AVX2", "FMA3"),
    "SkylakeX": ("AVX512_SKX",),
    "CooperLake": ("AVX512_SKX", "AVX512BF16"),
}


def _cpu_features() -> dict[str, bool]:
    """numpy's reading of the CPU's features (those the OS enables too); empty where it has none."""
    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, numpy 1
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return dict(getattr(module, "__cpu_features__", {}))
    return {}


@pytest.mark.parametrize("core", list(_CORES))
def test_the_screens_row_exact_products_hold_on_every_blas_kernel(core: str | None) -> None:
    """Property: with the BLAS kernels of ``core`` and 8 threads, a row's screen values are the same at every
    place of a product and in products of every size (1 row to 5,000), and the screen reads each row of a
    stereo clip the same whichever rows are read with it."""
    features = _cpu_features()
    lacking = [name for name in _CORES[core] if not features.get(name, False)]
    if lacking:
        pytest.skip(f"this CPU cannot run the {core} kernels (no {', '.join(lacking)})")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "8"}
    env.pop("OPENBLAS_CORETYPE", None)
    if core is not None:
        env["OPENBLAS_CORETYPE"] = core
    run = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, check=True, env=env)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["failures"] == [], f"{core} (kernels: {result['core']}): {result['failures']}"
