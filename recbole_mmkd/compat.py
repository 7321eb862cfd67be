"""Shims that RecBole 1.2.1 needs on numpy 2, scipy >= 1.13 and torch >= 2.6.

Imported by ``recbole_mmkd/__init__.py`` before anything imports recbole. Each shim names the
breakage it repairs; none changes behaviour for code that does not hit that breakage.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# numpy 2 removed these aliases. recbole.config.Configurator.compatibility_settings() reads
# np.float_, np.complex_ and np.unicode_ at every Config() and then sets np.float, np.bool, ...;
# recbole.evaluator.metrics (MRR, MAP, NDCG, GAUC) uses np.float and np.bool, so code that
# computes metrics before any Config exists needs those too. Ray < 2.7 used np.bool8.
for _alias, _target in {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,
    "float": np.float64,
    "bool": np.bool_,
}.items():
    if not hasattr(np, _alias):
        setattr(np, _alias, _target)


def _dok_update(self: sp.dok_matrix, data: dict) -> None:
    """Bulk-assign ``{(row, col): value}`` into a dok_matrix, as scipy < 1.13 did."""
    self._dict.update(data)


# scipy 1.13 removed dok_matrix._update, which RecBole's LightGCN/NGCF/SGL adjacency code calls
# (used here only when RecBole's own models are run beside ours, e.g. in bench/).
if not hasattr(sp.dok_matrix, "_update"):
    sp.dok_matrix._update = _dok_update
