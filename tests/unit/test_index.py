"""The gallery index returns exactly what float32 brute force returns, over people."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from face_engine.errors import ModelMismatchError
from face_engine.index import EXACT_FLOOR, GalleryIndex, PartitionedSearcher, merge_results, quantise


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), dtype=np.float32)


@pytest.fixture
def make_gallery():
    def make(n: int, seed: int = 0, per_person: int = 1) -> tuple[list[str], np.ndarray]:
        rng = np.random.default_rng(seed)
        vectors = _unit(rng.standard_normal((n, 128)))
        people = [f"person-{i // per_person}" for i in range(n)]
        return people, vectors

    return make


def _brute_force(
    people: list[str], vectors: np.ndarray, query: np.ndarray, k: int
) -> list[tuple[str, float]]:
    scores = vectors @ query
    best: dict[str, float] = {}
    for i in np.argsort(-scores, kind="stable"):
        best.setdefault(people[i], float(scores[i]))
    return sorted(best.items(), key=lambda kv: -kv[1])[:k]


def _mated(vectors: np.ndarray, rng: np.random.Generator, count: int, noise: float) -> np.ndarray:
    sources = vectors[rng.integers(0, len(vectors), count)]
    return _unit(sources + noise * rng.standard_normal(sources.shape))


def _assert_exact(result, expected: list[tuple[str, float]]) -> None:
    got = [(h.person_id, h.score) for h in result.hits]
    for (want_id, want_score), (got_id, got_score) in zip(expected, got, strict=False):
        if want_score >= EXACT_FLOOR:
            assert got_score == pytest.approx(want_score, abs=1e-5)
            assert got_id == want_id or got_score == pytest.approx(want_score, abs=1e-6)


@pytest.mark.parametrize(
    ("n", "block_size", "per_person"), [(5000, 1024, 1), (20000, 4096, 3), (3000, 1 << 20, 2)]
)
def test_index_search_equals_float32_brute_force(
    make_gallery, n: int, block_size: int, per_person: int
) -> None:
    # given a gallery spread over several blocks, several templates per person
    people, vectors = make_gallery(n, seed=n, per_person=per_person)
    index = GalleryIndex("m", block_size=block_size)
    index.add(people[: n // 2], vectors[: n // 2])
    index.add(people[n // 2 :], vectors[n // 2 :])
    rng = np.random.default_rng(1)
    probes = np.vstack(
        [_mated(vectors, rng, 20, 0.05), _mated(vectors, rng, 20, 0.2), _unit(rng.standard_normal((20, 128)))]
    )
    for query in probes:
        # when
        result = index.search(query, 5)
        # then
        _assert_exact(result, _brute_force(people, vectors, query, 5))
        assert result.exact_above < max(result.hits[-1].score, EXACT_FLOOR)


def test_index_handles_duplicates_and_ties(make_gallery) -> None:
    # given the same vector registered for 40 different people (ties) plus random others
    people, vectors = make_gallery(2000, seed=3)
    vectors[100:140] = vectors[100]
    index = GalleryIndex("m", block_size=1024)
    index.add(people, vectors)
    # when
    result = index.search(vectors[100], 10)
    # then: ten of the tied people, each with score 1
    assert len(result.hits) == 10
    assert {h.person_id for h in result.hits} <= {people[i] for i in range(100, 140)}
    assert all(h.score == pytest.approx(1.0, abs=1e-5) for h in result.hits)


def test_index_person_score_is_best_of_their_templates(make_gallery) -> None:
    # given a person with a far template and a near template
    people, vectors = make_gallery(500, seed=4)
    index = GalleryIndex("m")
    index.add(people, vectors)
    rng = np.random.default_rng(5)
    query = _unit(rng.standard_normal((1, 128)))[0]
    near = _unit((query + 0.03 * rng.standard_normal(128))[None, :])[0]
    index.add(["vip", "vip"], np.stack([-query, near]))
    # when
    result = index.search(query, 3)
    # then: the person appears once, with the near template's score
    assert result.hits[0].person_id == "vip"
    assert result.hits[0].score == pytest.approx(float(near @ query), abs=1e-5)
    assert [h.person_id for h in result.hits].count("vip") == 1


def test_index_tombstone_is_visible_to_the_next_search(make_gallery) -> None:
    # given
    people, vectors = make_gallery(3000, seed=6, per_person=2)
    index = GalleryIndex("m", block_size=1024)
    index.add(people, vectors)
    before = index.search(vectors[10], 1).hits[0]
    # when
    removed = index.delete_person(before.person_id)
    after = index.search(vectors[10], 5)
    # then
    assert removed == 2
    assert before.person_id not in {h.person_id for h in after.hits}
    assert len(index) == 2998
    assert index.delete_person(before.person_id) == 0


def test_index_reregistration_after_delete_is_searchable(make_gallery) -> None:
    # given a deleted person
    people, vectors = make_gallery(1000, seed=7)
    index = GalleryIndex("m")
    index.add(people, vectors)
    index.delete_person(people[5])
    # when they register again
    index.add([people[5]], vectors[5:6])
    # then
    assert index.search(vectors[5], 1).hits[0].person_id == people[5]


def test_index_batch_equals_single_queries(make_gallery) -> None:
    # given
    people, vectors = make_gallery(8000, seed=8)
    index = GalleryIndex("m", block_size=2048)
    index.add(people, vectors)
    probes = _mated(vectors, np.random.default_rng(9), 32, 0.1)
    # when
    batch = index.search_batch(probes, 5)
    # then
    for query, result in zip(probes, batch, strict=True):
        single = index.search(query, 5)
        assert [h.person_id for h in result.hits] == [h.person_id for h in single.hits]
        assert [h.score for h in result.hits] == pytest.approx([h.score for h in single.hits])


def test_index_refuses_other_models_and_bad_templates() -> None:
    # given
    index = GalleryIndex("sface-2021dec")
    # when / then
    with pytest.raises(ModelMismatchError, match="sface-2021dec"):
        index.search(np.ones(128, np.float32) / np.sqrt(128), 1, model_id="arcface-r100")
    with pytest.raises(ValueError, match="L2-normalised"):
        index.add(["a"], np.ones((1, 128), np.float32))
    with pytest.raises(ValueError, match="one id per row"):
        index.add(["a", "b"], _unit(np.ones((1, 128))))
    with pytest.raises(ValueError, match="NaN"):
        index.add(["a"], np.full((1, 128), np.nan, np.float32))


def test_index_empty_gallery_returns_no_hits() -> None:
    # given / when
    result = GalleryIndex("m").search(_unit(np.ones((1, 128)))[0], 5)
    # then
    assert result.hits == ()


def test_quantise_error_bound_holds(make_gallery) -> None:
    # given
    _, vectors = make_gallery(1000, seed=10)
    # when
    codes, scales, offsets, errors = quantise(vectors)
    # then: the reported error is the true reconstruction error, and the offset is 128 * sum
    rebuilt = codes.astype(np.float32) * scales[:, None]
    assert np.allclose(np.linalg.norm(vectors - rebuilt, axis=1), errors, atol=1e-6)
    assert (offsets == 128 * codes.sum(axis=1, dtype=np.int32)).all()
    assert codes.min() >= -127


def test_partitioned_searcher_merges_to_the_same_answer(make_gallery) -> None:
    # given one gallery split into three partitions (a person's templates across two of them)
    people, vectors = make_gallery(6000, seed=11, per_person=2)
    whole = GalleryIndex("m")
    whole.add(people, vectors)
    parts = [GalleryIndex("m") for _ in range(3)]
    for i, part in enumerate(parts):
        part.add(people[i * 2000 + 1 : (i + 1) * 2000 + 1], vectors[i * 2000 + 1 : (i + 1) * 2000 + 1])
    parts[0].add(people[:1], vectors[:1])
    probes = _mated(vectors, np.random.default_rng(12), 10, 0.1)
    with ThreadPoolExecutor(3) as pool:
        searcher = PartitionedSearcher(parts, pool)
        for query in probes:
            # when
            merged = searcher.search(query, 5)
            # then
            assert [h.person_id for h in merged.hits] == [h.person_id for h in whole.search(query, 5).hits]


def test_merge_results_keeps_best_score_per_person() -> None:
    # given
    from face_engine.index import Hit, SearchResult

    a = SearchResult((Hit("x", 0.9, 1), Hit("y", 0.5, 2)), 0.1, 2)
    b = SearchResult((Hit("y", 0.7, 3), Hit("z", 0.6, 4)), 0.15, 2)
    # when
    merged = merge_results([a, b], 2)
    # then
    assert [(h.person_id, h.score) for h in merged.hits] == [("x", 0.9), ("y", 0.7)]
    assert merged.exact_above == 0.15


def test_index_identify_uses_a_threshold_that_grows_with_the_gallery(make_gallery) -> None:
    # given two galleries of the same model, one ten times larger
    people, vectors = make_gallery(20000, seed=13)
    small, large = GalleryIndex("sface-2021dec"), GalleryIndex("sface-2021dec")
    small.add(people[:2000], vectors[:2000])
    large.add(people, vectors)
    query = vectors[7]
    # when
    a, b = small.identify(query), large.identify(query)
    # then: the same person matches, under a stricter threshold in the larger gallery
    assert a.match is not None and b.match is not None
    assert a.match.person_id == b.match.person_id == people[7]
    assert b.threshold.value > a.threshold.value
    assert (a.threshold.gallery_size, b.threshold.gallery_size) == (2000, 20000)
    assert b.threshold.fmr_per_scan == 1e-3


def test_index_identify_reports_no_match_for_a_stranger(make_gallery) -> None:
    # given
    people, vectors = make_gallery(5000, seed=14)
    index = GalleryIndex("sface-2021dec")
    index.add(people, vectors)
    stranger = _unit(np.random.default_rng(15).standard_normal((1, 128)))[0]
    # when
    answer = index.identify(stranger)
    # then: the best impostor is below the threshold, and the threshold is said
    assert answer.match is None
    assert answer.result.hits[0].score < answer.threshold.value
    assert answer.threshold.model_id == "sface-2021dec"


def test_index_spilled_rerank_rows_give_the_same_answers_and_one_file(make_gallery, tmp_path) -> None:
    # given the same gallery in RAM and with re-rank rows memory-mapped from disk, grown twice
    people, vectors = make_gallery(6000, seed=16)
    in_ram, spilled = GalleryIndex("m"), GalleryIndex("m", spill_dir=tmp_path)
    for part in (slice(0, 1000), slice(1000, 3000), slice(3000, 6000)):
        in_ram.add(people[part], vectors[part])
        spilled.add(people[part], vectors[part])
    query = vectors[4321]
    # when
    a, b = in_ram.search(query, 5), spilled.search(query, 5)
    # then
    assert [(h.person_id, h.score) for h in a.hits] == [(h.person_id, h.score) for h in b.hits]
    assert len(list(tmp_path.iterdir())) == 1


def _spill_bytes(directory) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()))


def _codes_in_ram(index: GalleryIndex) -> bytes:
    # White-box on purpose: RAM holds the int8 codes one template per column of each block, and
    # nothing public exposes them; an erasure must leave none of a person's codes behind.
    return b"".join(np.ascontiguousarray(block.codes.T).tobytes() for block in index._blocks)


def test_index_deleted_person_leaves_no_template_bytes_in_the_spill_file_or_ram(
    make_gallery, tmp_path
) -> None:
    # given: a spilled gallery in which person-7 has two templates (their float32 rows are on disk)
    people, vectors = make_gallery(3000, seed=17, per_person=2)
    index = GalleryIndex("m", spill_dir=tmp_path)
    index.add(people, vectors)
    rows = [i for i, person in enumerate(people) if person == "person-7"]
    floats = [vectors[i].astype("<f4").tobytes() for i in rows]
    codes = [quantise(vectors[i : i + 1])[0][0].tobytes() for i in rows]
    assert all(f in _spill_bytes(tmp_path) for f in floats)
    assert all(c in _codes_in_ram(index) for c in codes)
    # when
    removed = index.delete_person("person-7")
    # then: the rows are zeros on disk and in RAM, and everyone else is still found exactly
    assert removed == 2
    on_disk, in_ram = _spill_bytes(tmp_path), _codes_in_ram(index)
    assert not any(f in on_disk for f in floats)
    assert not any(c in in_ram for c in codes)
    assert index.search(vectors[rows[0]], 1).hits[0].person_id != "person-7"
    assert index.search(vectors[100], 1).hits[0].person_id == people[100]


def test_index_close_removes_its_spill_file(make_gallery, tmp_path) -> None:
    # given
    people, vectors = make_gallery(10, seed=18)
    index = GalleryIndex("m", spill_dir=tmp_path)
    index.add(people, vectors)
    assert len(list(tmp_path.iterdir())) == 1
    # when
    index.close()
    # then
    assert list(tmp_path.iterdir()) == []
