"""Cases for Dropout. Its masks are random: ``deterministic=False`` (training ≠ inference), no
PyTorch twin (the masks differ); each layer owns a seeded generator, which ``lf.gradcheck``
replays, and the exact-arithmetic check rebuilds the same seed."""

import learnflux as lf

from ..harness import LayerCase

CASES = [
    LayerCase("dropout", lambda: lf.Dropout(0.3, rng=0), (8,), exact=True, deterministic=False),
    LayerCase("dropout-image", lambda: lf.Dropout(0.5, rng=1), (2, 3, 3), exact=True, deterministic=False),
    LayerCase("dropout-global-rng", lambda: lf.Dropout(0.2), (6,), deterministic=False),
    LayerCase("dropout-p0", lambda: lf.Dropout(0.0), (5,), exact=True),
    LayerCase("dropout-p1", lambda: lf.Dropout(1.0), (5,), exact=True, deterministic=False),
]
