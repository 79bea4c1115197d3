"""The example store: plans, resumable chunked writes, verified reads, lookup and joins."""

import itertools

import numpy as np
import pytest

from glimpse_jax import data


def _outputs(indices):
  """Per-example arrays that encode their own index."""
  indices = np.asarray(indices)
  return {"score": indices.astype(np.float32) / 2,
          "guess": np.stack([indices, -indices], axis=1).astype(np.int64)}


def _planned(folder, indices=np.arange(3, 13), chunk_size=4, meta=None):
  store = data.ExampleStore(folder)
  store.plan(indices, chunk_size, {"source": "run-a"} if meta is None else meta)
  return store


def _write_all(store):
  for k in store.pending_chunks():
    store.write_chunk(k, _outputs(store.chunk_indices(k)))


def test_plan_sorts_the_indices_into_chunks(tmp_path):
  store = _planned(tmp_path / "s", indices=np.array([9, 2, 5, 7, 0]), chunk_size=2)
  assert store.num_chunks == 3 and store.num_done == 0 and not store.complete
  assert [store.chunk_indices(k).tolist() for k in range(3)] == [[0, 2], [5, 7], [9]]
  assert store.pending_chunks() == [0, 1, 2]
  with pytest.raises(ValueError, match=r"chunk must be an integer in \[0, 3\), got 3"):
    store.chunk_indices(3)


def test_planning_again_resumes_and_a_different_plan_raises(tmp_path):
  folder = tmp_path / "s"
  meta = data.default_config()  # a ConfigDict, tuples and all
  store = _planned(folder, meta=meta)
  store.write_chunk(1, _outputs(store.chunk_indices(1)))
  again = _planned(folder, indices=np.arange(12, 2, -1), meta=meta.to_dict())  # same plan
  assert again.pending_chunks() == [0, 2]
  nested = data.ExampleStore(tmp_path / "nested")
  nested.plan([1], 1, {"dataset": meta})
  nested.plan([1], 1, {"dataset": meta.to_dict()})
  changed = data.default_config()
  changed.seed = 3
  for kwargs, message in [
      (dict(chunk_size=5, meta=meta), "chunk_size 4 recorded, 5 given"),
      (dict(indices=np.arange(3, 12), meta=meta), "10 indices recorded, 9 given"),
      (dict(indices=np.r_[np.arange(3, 12), 20], meta=meta),
       "differ first at sorted position 9: 12 recorded, 20 given"),
      (dict(meta=changed), r"meta\['seed'\] is 0 recorded, 3 given"),
  ]:
    with pytest.raises(ValueError, match=message):
      _planned(folder, **kwargs)


@pytest.mark.parametrize("indices, chunk_size, meta, message", [
    ([1, 4, 1], 2, {}, "indices must be distinct, got 1 more than once"),
    ([3, -2], 2, {}, "indices must be >= 0, got -2"),
    ([], 2, {}, "indices must be a non-empty 1-D integer array"),
    ([0.5], 2, {}, "indices must be a non-empty 1-D integer array"),
    ([1], 0, {}, "chunk_size must be an integer >= 1, got 0"),
    ([1], 2, {"x": object()}, "meta must be JSON-serializable"),
])
def test_bad_plans_raise(indices, chunk_size, meta, message, tmp_path):
  with pytest.raises(ValueError, match=message):
    data.ExampleStore(tmp_path).plan(np.array(indices), chunk_size, meta)


def test_an_interrupted_stage_resumes_with_the_pending_chunks(tmp_path):
  folder = tmp_path / "s"
  store = _planned(folder)
  store.write_chunk(2, _outputs(store.chunk_indices(2)))
  store.write_chunk(0, _outputs(store.chunk_indices(0)))
  (folder / "chunk-00002.json").unlink()  # stopped between a chunk's data and its record
  (folder / ".chunk-00001.npz.tmp").write_bytes(b"half")  # and a temporary file left behind
  resumed = data.ExampleStore(folder)
  assert resumed.pending_chunks() == [1, 2] and resumed.num_done == 1
  with pytest.raises(ValueError, match="incomplete: 2 of 3 chunks missing .*chunk-00001.npz"):
    data.ExampleStore.open(folder)
  _write_all(resumed)
  assert resumed.complete and resumed.num_done == 3
  fields = data.ExampleStore.open(folder)
  np.testing.assert_array_equal(fields.indices, np.arange(3, 13))
  for name, value in _outputs(np.arange(3, 13)).items():
    np.testing.assert_array_equal(fields.arrays[name], value)
  assert fields.fields == {"guess": (np.dtype(np.int64), (2,)), "score": (np.dtype(np.float32), ())}
  assert fields.meta == {"source": "run-a"}


def test_chunks_must_agree_on_their_fields(tmp_path):
  store = _planned(tmp_path / "s")
  store.write_chunk(0, _outputs(store.chunk_indices(0)))
  rows = _outputs(store.chunk_indices(1))
  for arrays, message in [
      ({**rows, "score": rows["score"].astype(np.float64)},
       "chunk 1: field 'score' is float64 with trailing shape .*float32 with .* in chunk-00000"),
      ({**rows, "guess": rows["guess"][:, :1]},
       r"field 'guess' is int64 with trailing shape \(1,\)"),
      ({"score": rows["score"]}, "field 'guess' of chunk-00000.npz is missing"),
      ({**rows, "extra": rows["score"]}, "field 'extra' is not among the fields"),
      ({**rows, "score": rows["score"][:3]}, "field 'score' has shape .*leading dimension of 4"),
      ({**rows, "stored": rows["score"]}, "field name 'stored' must be an identifier other"),
  ]:
    with pytest.raises(ValueError, match=message):
      store.write_chunk(1, arrays)
  assert store.pending_chunks() == [1, 2]


def test_a_corrupt_chunk_is_named(tmp_path):
  folder = tmp_path / "s"
  store = _planned(folder)
  _write_all(store)
  path = folder / "chunk-00001.npz"
  payload = bytearray(path.read_bytes())
  payload[-3] ^= 0xFF
  path.write_bytes(bytes(payload))
  with pytest.raises(data.ChecksumError, match="chunk-00001.npz: sha256 .* corrupt"):
    data.ExampleStore.open(folder)


def test_equal_arrays_write_equal_bytes(tmp_path):
  records = []
  for name in ("a", "b"):
    store = _planned(tmp_path / name)
    _write_all(store)
    records.append([(tmp_path / name / f"chunk-0000{k}.npz").read_bytes() for k in range(3)])
  assert records[0] == records[1]


def test_lookup_zero_fills_indices_without_a_record(tmp_path):
  store = _planned(tmp_path / "s")
  _write_all(store)
  fields = data.ExampleStore.open(tmp_path / "s")
  found = fields.lookup(np.array([12, 0, 3, 13, 7, -1]))
  assert found["stored"].tolist() == [True, False, True, False, True, False]
  np.testing.assert_array_equal(found["score"], [6, 0, 1.5, 0, 3.5, 0])
  np.testing.assert_array_equal(found["guess"], [[12, -12], [0, 0], [3, -3], [0, 0], [7, -7],
                                                 [0, 0]])
  assert found["score"].dtype == np.float32


@pytest.fixture
def mnist(data_dir, tmp_path):
  cfg = data.default_config()
  cfg.update(dict(data_dir=str(data_dir), cache_dir=str(tmp_path / "tfds"), download=False,
                  train_examples=64, validation_examples=16, eval_examples=20))
  return cfg


def _label_store(cfg, folder, indices):
  """A store of twice the label of every other example of `indices`."""
  store = data.ExampleStore(folder)
  store.plan(indices[::2], 8, cfg.to_dict())
  labels = data.load_split(cfg, "train")["label"]
  for k in store.pending_chunks():
    store.write_chunk(k, {"twice": 2 * labels[store.chunk_indices(k)]})
  return data.ExampleStore.open(folder)


def test_join_adds_stored_fields_by_index(mnist, tmp_path):
  everything = np.arange(64)
  join = _label_store(mnist, tmp_path / "s", everything)
  for batch in itertools.islice(data.train_stream(mnist, 16, seed=0, join=join), 4):
    even = batch["index"] % 2 == 0
    np.testing.assert_array_equal(batch["stored"], even.astype(np.float32))
    np.testing.assert_array_equal(batch["twice"], np.where(even, 2 * batch["label"], 0))
  passes = list(data.eval_batches(mnist, 12, split="validation", join=join))
  last = passes[-1]  # 4 examples (indices 60..63), then padding rows of index 0, a stored one
  assert last["index"].tolist() == [60, 61, 62, 63] + [0] * 8
  assert last["stored"].tolist() == [1, 0, 1, 0] + [0] * 8
  np.testing.assert_array_equal(last["twice"][:4], [2 * last["label"][0], 0, 2 * last["label"][2],
                                                    0])
  assert not last["twice"][4:].any()
  chosen = next(data.index_batches(mnist, "train", np.array([5, 6]), 2, join=join))
  assert chosen["stored"].tolist() == [0, 1]


def test_join_refuses_on_the_fly_streams_and_clashing_fields(mnist, tmp_path):
  join = _label_store(mnist, tmp_path / "s", np.arange(48))
  derived = mnist.copy_and_resolve_references()
  derived.update(dict(name="translated", canvas_size=60))
  with pytest.raises(ValueError, match="set dataset.train_on_the_fly=False"):
    data.train_stream(derived, 8, seed=0, join=join)
  clash = data.StoredFields(np.arange(4), {"label": np.zeros(4)})
  with pytest.raises(ValueError, match=r"join fields \['label'\] clash"):
    data.train_stream(mnist, 8, seed=0, join=clash)
  with pytest.raises(ValueError, match="join must be a StoredFields"):
    data.eval_batches(mnist, 8, join={"twice": np.zeros(4)})
