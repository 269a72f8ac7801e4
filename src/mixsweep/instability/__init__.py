"""Instability of a cell's restarts beyond the standard deviation (Du & Nguyen, ACL 2023, arXiv 2302.07778).

Pure functions on arrays (numpy/scipy only), no I/O:

- :mod:`.prediction`: SD of the scores, pairwise disagreement, Fleiss' κ (textbook, and as the authors'
  notebook computes it), pairwise Jensen–Shannon divergence, and the ensemble of restarts (majority
  vote / mean) scored like a run;
- :mod:`.representation`: SVCCA, PWCCA, linear CKA and orthogonal Procrustes distances between two
  runs' representations of the same examples;
- :mod:`.cell`: a cell's measures over all pairs of its restarts, with a jackknife interval over
  restarts (ours), and the authors' bootstrap draws for the correlations between measures.

Every measure is an *instability* (larger = less stable), as in the paper: similarities s are
reported as 1 − s, and Fleiss' κ as 1 − κ. SD, disagreement, JSD, SVCCA, CKA and Procrustes follow
the authors' code (github.com/nlpsoc/instability_measurement, ``representation_measure.py`` and
``analyze_measures.ipynb``); their κ has chance agreement 1/n, so both κ are given; PWCCA is our
addition (their pipeline computes CKA, Procrustes and SVCCA only). Each function's docstring states its
formula and any choice the paper leaves open.
"""

from mixsweep.instability.cell import MEASURES, CellMeasures, cell_measures, pair_matrix
from mixsweep.instability.prediction import (
    ensemble_predictions,
    fleiss_kappa,
    fleiss_kappa_authors,
    jsd_matrix,
    pairwise_disagreement,
    score_sd,
)
from mixsweep.instability.representation import (
    cka_distance,
    procrustes_distance,
    pwcca_distance,
    svcca_distance,
)

__all__ = [
    "MEASURES", "CellMeasures", "cell_measures", "pair_matrix",
    "ensemble_predictions", "fleiss_kappa", "fleiss_kappa_authors", "jsd_matrix", "pairwise_disagreement", "score_sd",
    "cka_distance", "procrustes_distance", "pwcca_distance", "svcca_distance",
]
