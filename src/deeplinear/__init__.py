"""deeplinear: gradient descent on deep linear networks.

The library behind the reference replication of *Convergence of gradient
descent for learning linear neural networks* (Nguegnang, Rauhut, Terstiege,
arXiv 2108.02040). Formulas follow ``docs/theory.md`` section by section.

Notation used throughout (theory.md, section 1):

- ``X`` data ``(d_x, m)``, ``Y`` targets ``(d_y, m)``;
- ``W`` the list of layer matrices, ``W[j-1]`` is ``W_j`` of shape ``(d_j, d_{j-1})``;
  stacked runs carry a leading batch axis ``(B, d_j, d_{j-1})``;
- ``P = W_N ... W_1`` the end-to-end product, ``eta`` a step size.
"""

from deeplinear.errors import InputError

__all__ = ["InputError", "__version__"]
__version__ = "0.1.0"
