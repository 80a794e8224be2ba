"""Compiled scatter loops of the horizontal softmax splat on the CPU (numba).

torch's CPU scatters (``index_add_``, ``scatter_reduce_``, ``index_select``) each make one pass
over a materialised int64 index, and the horizontal splat needs six of them per frame plus the
comparisons that build the index: about half its time at 1080p. These loops derive each corner's
target from an int32 floor of the landing x and fuse the passes: one for the landing point, the
validity, the bilinear weights and the coverage, one for the per-target peak logit and the
shifted logits, one for the denominator, every channel's numerator and their quotient. A corner
lands in its source row, so each loop works a row at a time with that row's sums in cache.

They keep the splat bitwise identical to the torch path (tests/dvg/geometry): every sum adds the
same float terms in the same corner-major, then raster order as torch's single-threaded
``index_add_``; products and differences are single IEEE operations (numba does not contract
them into fused multiply-adds without ``fastmath``); and ``log`` / ``exp`` stay in torch, over
the same (K, B, H, W) layouts, so their vectorised and scalar lanes line up with the general
path's. No torch op does these fused loops, hence numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def corners(columns: np.ndarray, flow: np.ndarray, mask: np.ndarray, bilinear: np.ndarray,
            valid: np.ndarray, left: np.ndarray, coverage: np.ndarray) -> bool:  # fmt: skip
    """Where each source pixel of R = B H rows lands and what it adds to the coverage.

    columns: (W,) 0..W-1 and flow: (R, W) its x-offset, both in the sums' dtype; mask: (R, W)
    source mask (uint8), or (0, 0) for none -> left: (R, W) int32 floor x0 of the landing x
    (-2 where it is outside [-1, W), so no corner lands); bilinear: (2, R, W) the weights
    1 - fx and fx of the corners x0 and x0 + 1, 0 where a corner is invalid; valid: (2, R, W)
    each corner's validity; coverage: (R, W) the sum of the valid corners' weights landing on
    each pixel. Returns whether any fx > 0 (if not, only the first corners are used).
    """
    rows, w = flow.shape
    masked = mask.shape[0] > 0
    one = np.ones(1, dtype=bilinear.dtype)[0]
    total = np.empty(w, dtype=coverage.dtype)
    fractional = False
    for r in range(rows):  # a corner lands in its source row: rows are independent
        total[:] = 0
        for i in range(w):
            x = columns[i] + flow[r, i]
            x0 = np.floor(x)
            fx = x - x0
            fractional |= fx > 0
            weight = one - fx
            inside = x0 >= -1 and x0 < w
            start = np.int32(x0) if inside else np.int32(-2)
            left[r, i] = start
            ok = start >= 0 and weight > 0 and (not masked or mask[r, i] != 0)
            valid[0, r, i] = ok
            bilinear[0, r, i] = weight if ok else 0
            bilinear[1, r, i] = fx
            if ok:
                total[start] += weight
        for i in range(w):  # then the second corners (the torch path's corner-major order)
            start = left[r, i]
            fx = bilinear[1, r, i]
            ok = start >= -1 and start < w - 1 and fx > 0 and (not masked or mask[r, i] != 0)
            valid[1, r, i] = ok
            if ok:
                total[start + 1] += fx
            else:
                bilinear[1, r, i] = 0
        coverage[r] = total
    return fractional


@njit(cache=True, nogil=True)
def shifted_logits(left: np.ndarray, valid: np.ndarray, logits: np.ndarray) -> None:
    """logits: (K, R, W), -inf at invalid corners -> in place, each valid corner's logit minus
    the largest logit landing on its target (the softmax's shift); invalid ones stay -inf."""
    k, rows, w = logits.shape
    peak = np.empty(w, dtype=logits.dtype)
    for r in range(rows):
        peak[:] = -np.inf
        for corner in range(k):
            for i in range(w):
                if valid[corner, r, i]:
                    target = left[r, i] + corner
                    if logits[corner, r, i] > peak[target]:
                        peak[target] = logits[corner, r, i]
        for corner in range(k):
            for i in range(w):
                if valid[corner, r, i]:
                    logits[corner, r, i] -= peak[left[r, i] + corner]


@njit(cache=True, nogil=True, error_model="numpy")
def normalised_sums(left: np.ndarray, valid: np.ndarray, contribution: np.ndarray,
                    source: np.ndarray, out: np.ndarray) -> None:  # fmt: skip
    """contribution: (K, R, W) softmax weights; source: (C, R, W) colours (any strides) -> out:
    (R, W, C), channels last, the weighted colours summed at each valid corner's target, divided
    by the summed weights where those are > 0 (else by 1: the pixel is a hole and keeps its
    partial sum, 0 if none).

    Three channels a pass, each with its own 1-D row of sums: 2.4x faster than one 2-D (C, W)
    row indexed in an inner channel loop, which numba does not keep in registers.
    """
    k, rows, w = contribution.shape
    channels = source.shape[0]
    weights = np.empty(w, dtype=out.dtype)
    sum0 = np.empty(w, dtype=out.dtype)
    sum1 = np.empty(w, dtype=out.dtype)
    sum2 = np.empty(w, dtype=out.dtype)
    one = np.ones(1, dtype=out.dtype)[0]  # keeps the division in the sums' precision
    for first in range(0, channels, 3):
        count = min(3, channels - first)
        # A group of fewer than three repeats its last channel and writes it once.
        source0, source1 = source[first], source[first + min(1, count - 1)]
        source2 = source[first + count - 1]
        for r in range(rows):  # a corner lands in its source row: rows are independent
            weights[:] = 0
            sum0[:] = 0
            sum1[:] = 0
            sum2[:] = 0
            for corner in range(k):
                for i in range(w):
                    if valid[corner, r, i]:
                        target = left[r, i] + corner
                        weight = contribution[corner, r, i]
                        weights[target] += weight
                        sum0[target] += source0[r, i] * weight
                        sum1[target] += source1[r, i] * weight
                        sum2[target] += source2[r, i] * weight
            for i in range(w):
                d = weights[i]
                if not d > 0:
                    d = one
                out[r, i, first] = sum0[i] / d
                if count > 1:
                    out[r, i, first + 1] = sum1[i] / d
                if count > 2:
                    out[r, i, first + 2] = sum2[i] / d
