"""RFC 6962 / RFC 9162 Merkle trees over record hashes: roots, inclusion and consistency proofs.

The functions take leaf hashes (already ``SHA-256(0x00 || body)``). `CompactRange` folds leaves in
one at a time and gives the root of everything seen so far in O(log n) memory, which is what lets the
verifier stream a ledger of any size.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from .auditor import EMPTY_ROOT, CompactRange, inclusion_root
from .hashing import node_hash

__all__ = ["EMPTY_ROOT", "CompactRange", "MerkleTree", "ProofError", "consistency_proof", "inclusion_proof",
           "root", "verify_consistency", "verify_inclusion"]


class ProofError(ValueError):
    """A proof or its parameters are invalid."""


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 section 2.1."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    # Pairing left to right and carrying an odd last node up is exactly the RFC's recursion.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf `index` in the tree of `leaves` (RFC 6962 2.1.1)."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ProofError(f"leaf index {index} is outside a tree of size {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root(leaves[:k])]


class MerkleTree:
    """One tree whose subtree roots are computed once, for many inclusion proofs against the same size.

    `inclusion_proof` recomputes the sibling subtrees for every call, O(n) each; a report citing
    thousands of entries asks for proofs of many leaves of one tree, so the subtree roots are kept.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._leaves = list(leaves)
        self._roots: dict[tuple[int, int], bytes] = {}

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._leaves)

    def _root(self, start: int, stop: int) -> bytes:
        if stop - start == 1:
            return self._leaves[start]
        held = self._roots.get((start, stop))
        if held is None:
            middle = start + _split(stop - start)
            held = self._roots[(start, stop)] = node_hash(self._root(start, middle), self._root(middle, stop))
        return held

    def leaf(self, index: int) -> bytes:
        """The leaf hash at `index`."""
        return self._leaves[index]

    def root(self) -> bytes:
        """MTH of all leaves."""
        return self._root(0, len(self._leaves)) if self._leaves else EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        """PATH(index, D[n]), equal to `inclusion_proof(index, leaves)`."""
        if not 0 <= index < len(self._leaves):
            raise ProofError(f"leaf index {index} is outside a tree of size {len(self._leaves)}")
        path: list[bytes] = []
        start, stop = 0, len(self._leaves)
        while stop - start > 1:
            middle = start + _split(stop - start)
            if index < middle:
                path.append(self._root(middle, stop))
                stop = middle
            else:
                path.append(self._root(start, middle))
                start = middle
        path.reverse()  # RFC order: the sibling nearest the leaf first
        return path

    def inclusion_proofs(self, indices: Iterable[int]) -> dict[int, list[bytes]]:
        """Index -> PATH(index, D[n]) for every index, in one descent of the tree.

        A report cites tens of thousands of entries: one descent visits each subtree the indices share
        once (the siblings near the root are common to most of them), where separate proofs would
        split the same ranges again for every index.
        """
        wanted = sorted(set(indices))
        size = len(self._leaves)
        if wanted and (wanted[0] < 0 or wanted[-1] >= size):
            bad = wanted[0] if wanted[0] < 0 else wanted[-1]
            raise ProofError(f"leaf index {bad} is outside a tree of size {size}")
        proofs: dict[int, list[bytes]] = {}
        above: list[bytes] = []  # the siblings of the current subtree's ancestors, nearest the root first

        def descend(start: int, stop: int, lo: int, hi: int) -> None:  # wanted[lo:hi] lie in [start, stop)
            if stop - start == 1:
                proofs[wanted[lo]] = above[::-1]
                return
            middle = start + _split(stop - start)
            cut = bisect_left(wanted, middle, lo, hi)
            if lo < cut:
                above.append(self._root(middle, stop))
                descend(start, middle, lo, cut)
                above.pop()
            if cut < hi:
                above.append(self._root(start, middle))
                descend(middle, stop, cut, hi)
                above.pop()

        if wanted:
            descend(0, size, 0, len(wanted))
        return proofs


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): proves the tree of the first `old_size` leaves is a prefix (RFC 6962 2.1.2)."""
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ProofError(f"old size {old_size} must be between 1 and the new size {n}")
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root(leaves[:k])]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> None:
    """Check an inclusion proof (RFC 9162 section 2.1.3.2).

    Raises:
        ProofError: when the proof does not lead from `leaf` to `expected_root`.
    """
    try:
        result = inclusion_root(leaf, index, size, proof)
    except ValueError as exc:
        raise ProofError(str(exc)) from None
    if result != expected_root:
        raise ProofError("the proof leads to a different root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check a consistency proof (RFC 9162 section 2.1.4.2).

    Raises:
        ProofError: when the proof does not show the old tree is a prefix of the new one.
    """
    if old_size < 1 or old_size > new_size:
        raise ProofError(f"old size {old_size} must be between 1 and the new size {new_size}")
    if any(len(h) != 32 for h in proof):
        raise ProofError("a proof hash is not 32 bytes")
    if old_size == new_size:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if old_root != new_root:
            raise ProofError("equal sizes with different roots")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node of the path
        path.insert(0, old_root)
    if not path:
        raise ProofError("empty proof")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than needed")
    if fr != old_root:
        raise ProofError("the proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("the proof does not lead to the new root")
