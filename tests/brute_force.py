"""A slow but obviously correct O(N²) periodic neighbour list, for tests only.

Every periodic image that can possibly lie within the cutoff is enumerated: along a
periodic lattice vector a_k the distance between two points is at least
|f_k| * w_k, where f_k is the fractional coordinate of their separation along a_k and
w_k = V / |a_l x a_m| is the cell's perpendicular width in that direction. So the image
shifts n_k with |f_k + n_k| * w_k < cutoff are all that need to be tried, for every
pair, whatever the cutoff and however far the positions lie outside the cell.
"""

from __future__ import annotations

import itertools

import numpy as np


def _complete_basis(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """The cell with its non-periodic rows replaced by unit vectors orthogonal to the periodic ones."""
    basis = np.array(cell, dtype=np.float64)
    periodic = basis[pbc]
    if periodic.shape[0] == 3:
        return basis
    if periodic.shape[0] == 0:
        return np.eye(3)
    # rows of vt beyond the rank of the periodic rows span their orthogonal complement
    _, _, vt = np.linalg.svd(periodic)
    complement = iter(vt[periodic.shape[0] :])
    for k in range(3):
        if not pbc[k]:
            basis[k] = next(complement)
    return basis


def brute_force_neighbors(positions, cell, pbc, cutoff: float) -> set[tuple[int, int, int, int, int]]:
    """All (sender, receiver, s0, s1, s2) with |r_recv - r_send + s @ cell| < cutoff, no (i, i, 0)."""
    pos = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    basis = _complete_basis(cell, pbc)
    inv = np.linalg.inv(basis)
    frac = pos @ inv  # fractional coordinates in the completed basis
    volume = abs(np.linalg.det(basis))
    ranges = []
    for k in range(3):
        if not pbc[k]:
            ranges.append(range(1))
            continue
        width = volume / np.linalg.norm(np.cross(basis[(k + 1) % 3], basis[(k + 2) % 3]))
        df = frac[:, k][None, :] - frac[:, k][:, None]  # receiver minus sender
        lo = int(np.floor(-cutoff / width - df.max())) - 1
        hi = int(np.ceil(cutoff / width - df.min())) + 1
        ranges.append(range(lo, hi + 1))
    diff = pos[None, :, :] - pos[:, None, :]  # [sender, receiver]
    found: set[tuple[int, int, int, int, int]] = set()
    n = pos.shape[0]
    eye = np.eye(n, dtype=bool)
    for shift in itertools.product(*ranges):
        s = np.array(shift, dtype=np.float64)
        vec = diff + s @ cell
        within = np.einsum("ijk,ijk->ij", vec, vec) < cutoff * cutoff
        if shift == (0, 0, 0):
            within &= ~eye
        for i, j in zip(*np.nonzero(within), strict=True):
            found.add((int(i), int(j), *shift))
    return found


def as_triples(senders, receivers, shifts) -> set[tuple[int, int, int, int, int]]:
    """A neighbour list as the same kind of set, for comparison."""
    shifts = np.asarray(shifts)
    return {
        (int(i), int(j), int(s[0]), int(s[1]), int(s[2]))
        for i, j, s in zip(np.asarray(senders), np.asarray(receivers), shifts, strict=True)
    }
