"""RFC 6962 Merkle trees: known answers, proofs, and proofs that must fail."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charter.ledger import merkle
from charter.ledger.hashing import leaf_hash, node_hash
from charter.ledger.merkle import CompactRange, ProofError

LEAVES = [leaf_hash(bytes.fromhex(h)) for h in
          ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


@pytest.mark.parametrize("size", range(9))
def test_known_answer_roots(size: int) -> None:
    assert merkle.root(LEAVES[:size]).hex() == ROOTS[size]
    compact = CompactRange()
    for leaf in LEAVES[:size]:
        compact.append(leaf)
    assert compact.root().hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (0, 1, []),
])
def test_known_answer_inclusion(index: int, size: int, proof: list[str]) -> None:
    assert [p.hex() for p in merkle.inclusion_proof(index, LEAVES[:size])] == proof
    merkle.verify_inclusion(LEAVES[index], index, size, [h(p) for p in proof], h(ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "proof"), [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (8, 8, []),
])
def test_known_answer_consistency(old: int, new: int, proof: list[str]) -> None:
    assert [p.hex() for p in merkle.consistency_proof(old, LEAVES[:new])] == proof
    merkle.verify_consistency(old, new, h(ROOTS[old]), h(ROOTS[new]), [h(p) for p in proof])


def _tree(n: int) -> list[bytes]:
    return [leaf_hash(bytes([i % 256, i // 256, n])) for i in range(n)]


def test_every_inclusion_and_consistency_proof_up_to_33_leaves_verifies() -> None:
    for n in range(1, 34):
        leaves = _tree(n)
        root = merkle.root(leaves)
        for i in range(n):
            merkle.verify_inclusion(leaves[i], i, n, merkle.inclusion_proof(i, leaves), root)
        for m in range(1, n + 1):
            merkle.verify_consistency(m, n, merkle.root(leaves[:m]), root, merkle.consistency_proof(m, leaves))


def _flip(data: bytes, bit: int) -> bytes:
    return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << bit % 8)]) + data[bit // 8 + 1:]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_corrupted_inclusion_proofs_fail(n: int) -> None:
    leaves = _tree(n)
    root = merkle.root(leaves)
    for index in range(n):
        proof = merkle.inclusion_proof(index, leaves)
        probes: list[tuple[int, int, list[bytes], bytes, bytes]] = [
            (index + 1, n, proof, leaves[index], root), (index - 1, n, proof, leaves[index], root),
            (index ^ 2, n, proof, leaves[index], root), (index, n * 2, proof, leaves[index], root),
            (index, n // 2, proof, leaves[index], root), (index, n, proof, leaf_hash(b"other"), root),
            (index, n, proof, leaves[index], merkle.EMPTY_ROOT), (index, n, [*proof, root], leaves[index], root),
            (index, n, [root, *proof], leaves[index], root), (index, 0, proof, leaves[index], root),
        ]
        if proof:
            probes.append((index, n, proof[:-1], leaves[index], root))
            probes.extend((index, n, [*proof[:k], _flip(proof[k], bit), *proof[k + 1:]], leaves[index], root)
                          for k in range(len(proof)) for bit in (0, 77, 255))
        for i, size, bad, leaf, expected in probes:
            if (i, size, bad, leaf, expected) == (index, n, proof, leaves[index], root):
                continue
            with pytest.raises(ProofError):
                merkle.verify_inclusion(leaf, i, size, bad, expected)


def test_interior_node_cannot_pose_as_a_leaf() -> None:
    # Second preimage: present the two children of an interior node as if they were one entry body.
    # The verifier hashes bodies as leaves (0x00 prefix), so the node's hash (0x01 prefix) is not reached.
    leaves = _tree(4)
    root = merkle.root(leaves)
    forged_body = leaves[0] + leaves[1]
    assert node_hash(leaves[0], leaves[1]) != leaf_hash(forged_body)
    for size in (2, 4):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf_hash(forged_body), 0, size, [node_hash(leaves[2], leaves[3])], root)


@pytest.mark.parametrize(("old", "new"), [(1, 8), (3, 7), (4, 9), (6, 8), (5, 13)])
def test_corrupted_consistency_proofs_fail(old: int, new: int) -> None:
    leaves = _tree(new)
    old_root, new_root = merkle.root(leaves[:old]), merkle.root(leaves)
    proof = merkle.consistency_proof(old, leaves)
    probes = [(old + 1, new, old_root, new_root, proof), (old - 1, new, old_root, new_root, proof),
              (old ^ 2, new, old_root, new_root, proof), (old, new * 2, old_root, new_root, proof),
              (old, new // 2, old_root, new_root, proof), (old, new, new_root, old_root, proof),
              (old, new, merkle.EMPTY_ROOT, new_root, proof), (old, new, old_root, merkle.EMPTY_ROOT, proof),
              (old, new, old_root, new_root, []), (old, new, old_root, new_root, proof[:-1]),
              (old, new, old_root, new_root, [*proof, proof[0]]), (0, new, old_root, new_root, proof),
              (new + 1, new, old_root, new_root, proof)]
    probes += [(old, new, old_root, new_root, [*proof[:k], _flip(proof[k], 9), *proof[k + 1:]])
               for k in range(len(proof))]
    for m, n, r1, r2, bad in probes:
        if (m, n) == (old, new) and (r1, r2) == (old_root, new_root) and bad == proof:
            continue
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, r1, r2, bad)


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    leaves = _tree(4)
    root = merkle.root(leaves)
    merkle.verify_consistency(4, 4, root, root, [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(4, 4, root, root, [root])
    with pytest.raises(ProofError):
        merkle.verify_consistency(4, 4, root, merkle.EMPTY_ROOT, [])


def test_proof_generation_rejects_bad_arguments() -> None:
    for call in (lambda: merkle.inclusion_proof(3, _tree(3)), lambda: merkle.consistency_proof(0, _tree(3)),
                 lambda: merkle.consistency_proof(4, _tree(3))):
        with pytest.raises(ProofError):
            call()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 33, 100])
def test_cached_tree_agrees_with_the_recursive_definition(n: int) -> None:
    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(n)]
    tree = merkle.MerkleTree(leaves)
    assert tree.root() == merkle.root(leaves)
    for index in range(n):
        assert tree.inclusion_proof(index) == merkle.inclusion_proof(index, leaves)
    with pytest.raises(merkle.ProofError):
        tree.inclusion_proof(n)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=300).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.integers(min_value=0, max_value=n - 1), max_size=40))))
def test_one_descent_gives_the_proofs_of_separate_calls(case: tuple[int, list[int]]) -> None:
    n, indices = case
    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(n)]
    tree = merkle.MerkleTree(leaves)
    proofs = tree.inclusion_proofs(indices)
    assert sorted(proofs) == sorted(set(indices))
    for index in indices:
        assert proofs[index] == merkle.inclusion_proof(index, leaves)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 64, 65])
def test_one_descent_covers_every_leaf(n: int) -> None:
    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(n)]
    tree = merkle.MerkleTree(leaves)
    assert tree.inclusion_proofs(range(n)) == {i: merkle.inclusion_proof(i, leaves) for i in range(n)}
    assert tree.inclusion_proofs([]) == {}
    for bad in ([n], [-1], [0, n]):
        with pytest.raises(merkle.ProofError):
            tree.inclusion_proofs(bad)


@pytest.mark.parametrize("n", range(2, 70))
def test_split_is_the_largest_power_of_two_below(n: int) -> None:
    k = merkle._split(n)
    assert k < n <= 2 * k and k & (k - 1) == 0
