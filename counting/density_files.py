"""The file a density map is kept and sent in: a compressed .npz holding `density` (float16, people per cell at
1/OUTPUT_STRIDE of the frame's sides) and `stride`. Workers store it, gateways in edge mode send it."""

from __future__ import annotations

import io

import numpy as np

from counting.specs import OUTPUT_STRIDE


def density_npz(density: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, density=density.astype(np.float16), stride=np.int32(OUTPUT_STRIDE))
    return buffer.getvalue()
