"""Random (n, y) states for the BOIN select.mtd reference fixture (seed 42)."""

import sys

import numpy as np
import pandas as pd

rng = np.random.default_rng(42)
rows = []
for _ in range(3000):
    k = rng.integers(2, 7)
    tried = rng.integers(1, k + 1)
    n = np.zeros(6, int)
    y = np.zeros(6, int)
    n[:tried] = rng.choice([1, 2, 3, 3, 6, 6, 9, 12, 15], size=tried)
    for t in range(tried):
        y[t] = rng.binomial(n[t], min(0.9, 0.1 + 0.12 * t))
    rows.append([k, *n, *y])
cols = ["K"] + [f"n{i}" for i in range(6)] + [f"y{i}" for i in range(6)]
pd.DataFrame(rows, columns=cols).to_csv(sys.stdout, index=False)
