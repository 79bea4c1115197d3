"""The public dataset API: config validation, training streams and evaluation passes."""

import itertools

import numpy as np
import pytest

from glimpse_jax import data
from glimpse_jax.data import sources


@pytest.fixture
def make_config(data_dir, tmp_path):
  def make(**overrides):
    cfg = data.default_config()
    cfg.update(dict(data_dir=str(data_dir), cache_dir=str(tmp_path / "tfds"), download=False,
                    eval_examples=300))
    cfg.update(overrides)
    return cfg
  return make


DATASETS = [
    dict(name="mnist"),
    dict(name="translated", canvas_size=60),
    dict(name="translated_scaled", canvas_size=100, source="fashion_mnist"),
    dict(name="cluttered", canvas_size=100),
    dict(name="cluttered", canvas_size=60, train_on_the_fly=False, train_examples=200),
]


def _take(stream, count):
  return list(itertools.islice(stream, count))


def test_default_config_is_valid_and_plain():
  cfg = data.default_config()
  data.validate_config(cfg)
  assert data.image_shape(cfg) == (28, 28, 1) and data.num_classes(cfg) == 10
  cfg.eval_examples = 5  # placeholders take ints after None
  cfg.data_dir = "somewhere"
  cfg.update(dict(name="cluttered", canvas_size=100))
  assert data.image_shape(cfg) == (100, 100, 1)


@pytest.mark.parametrize("overrides, field", [
    (dict(name="svhn"), "dataset.name"),
    (dict(source="kmnist"), "dataset.source"),
    (dict(canvas_size=60), "dataset.canvas_size must be 28 for name='mnist'"),
    (dict(name="translated", canvas_size=20), "dataset.canvas_size must be >= 28"),
    (dict(name="translated_scaled", canvas_size=50), "dataset.canvas_size 50 cannot hold"),
    (dict(name="cluttered", canvas_size=60, num_clutter=-1), "dataset.num_clutter"),
    (dict(clutter_size=29), "dataset.clutter_size"),
    (dict(scale_range=(2.0, 1.0)), "dataset.scale_range"),
    (dict(scale_range=(0.0, 1.0)), "dataset.scale_range"),
    (dict(scale_range=(0.01, 1.0)), "dataset.scale_range low 0.01"),
    (dict(seed=-1), "dataset.seed"),
    (dict(eval_examples=0), "dataset.eval_examples"),
    (dict(train_examples=60_001), "dataset.train_examples must be <= 60000"),
    (dict(validation_examples=-1), "dataset.validation_examples must be an integer >= 0"),
    (dict(train_examples=100, validation_examples=100),
     "dataset.validation_examples must be < the 100 examples"),
    (dict(name="translated", canvas_size=60, train_on_the_fly=False, train_examples=60_001,
          validation_examples=10), "validation_examples needs dataset.train_examples <= 60000"),
])
def test_validate_config_names_the_bad_field(overrides, field):
  cfg = data.default_config()
  cfg.update(overrides)
  with pytest.raises(ValueError, match=field):
    data.validate_config(cfg)


@pytest.mark.parametrize("overrides", DATASETS)
def test_stream_batches_have_the_batch_contract(overrides, make_config):
  cfg = make_config(**overrides)
  batch = next(data.train_stream(cfg, 8, seed=0))
  side = data.image_shape(cfg)[0]
  assert batch["image"].shape == (8, side, side, 1) and batch["image"].dtype == np.float32
  assert 0 <= batch["image"].min() and batch["image"].max() <= 1 and batch["image"].max() > 0.5
  assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
  assert batch["center"].shape == (8, 2) and batch["center"].dtype == np.float32
  assert batch["box_size"].shape == (8,) and batch["box_size"].dtype == np.float32


@pytest.mark.parametrize("overrides", DATASETS)
def test_streams_are_deterministic_per_seed(overrides, make_config):
  cfg = make_config(**overrides)
  first = _take(data.train_stream(cfg, 16, seed=1), 2)
  again = _take(data.train_stream(cfg, 16, seed=1), 2)
  other = _take(data.train_stream(cfg, 16, seed=2), 2)
  for a, b in zip(first, again):
    assert all(a[key].tobytes() == b[key].tobytes() for key in a)
  assert first[0]["image"].tobytes() != other[0]["image"].tobytes()
  assert first[0]["image"].tobytes() != first[1]["image"].tobytes()


@pytest.mark.parametrize("overrides", [dict(name="mnist", train_examples=100)] + DATASETS[1:])
def test_resumed_stream_equals_the_uninterrupted_one(overrides, make_config):
  cfg = make_config(**overrides)
  fresh = _take(data.train_stream(cfg, 32, seed=5), 9)
  resumed = _take(data.train_stream(cfg, 32, seed=5, start_step=6), 3)
  for a, b in zip(fresh[6:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("overrides", DATASETS)
def test_process_slices_are_disjoint_and_cover_the_global_batch(overrides, make_config):
  cfg = make_config(**overrides)
  whole = _take(data.train_stream(cfg, 12, seed=3), 2)
  slices = [_take(data.train_stream(cfg, 12, seed=3, process_index=p, process_count=3), 2)
            for p in range(3)]
  for step in range(2):
    for key in whole[step]:
      parts = [slices[p][step][key] for p in range(3)]
      assert all(part.shape[0] == 4 for part in parts)
      np.testing.assert_array_equal(np.concatenate(parts), whole[step][key])


def test_fixed_stream_visits_every_example_once_per_epoch(make_config):
  cfg = make_config(name="mnist", train_examples=96)
  split = data.load_split(cfg, "train")
  for epoch in range(2):
    batches = _take(data.train_stream(cfg, 32, seed=0, start_step=3 * epoch), 3)
    seen = np.concatenate([b["image"] for b in batches])
    assert sorted(map(bytes, (seen * 255).round().astype(np.uint8))) == sorted(
        map(bytes, split["image"]))


def test_derived_fixed_stream_draws_from_the_cached_train_split(make_config):
  cfg = make_config(name="translated", canvas_size=60, train_on_the_fly=False, train_examples=50)
  split = data.load_split(cfg, "train")
  batch = next(data.train_stream(cfg, 20, seed=0))
  known = set(map(bytes, split["image"]))
  assert all(bytes(image) in known for image in (batch["image"] * 255).round().astype(np.uint8))


def test_on_the_fly_labels_follow_the_source_balance(make_config, data_dir):
  cfg = make_config(name="cluttered", canvas_size=60)
  labels = np.concatenate([b["label"] for b in _take(data.train_stream(cfg, 128, seed=0), 20)])
  _, source = sources.load_digits("mnist", "train", data_dir, download=False)
  expected = np.bincount(source) / source.size
  np.testing.assert_allclose(np.bincount(labels, minlength=10) / labels.size, expected, atol=0.025)


def test_on_the_fly_train_examples_limits_the_digit_pool(make_config, data_dir):
  cfg = make_config(name="translated", canvas_size=60, train_examples=3)
  _, source = sources.load_digits("mnist", "train", data_dir, download=False)
  labels = next(data.train_stream(cfg, 64, seed=0))["label"]
  assert set(labels) == set(source[:3])


@pytest.mark.parametrize("overrides", DATASETS)
def test_eval_pass_is_padded_and_masked(overrides, make_config):
  cfg = make_config(**overrides)
  batches = list(data.eval_batches(cfg, 128))
  assert [b["mask"].sum() for b in batches] == [128, 128, 44]
  last = batches[-1]
  assert last["image"].shape[0] == 128 and last["mask"].dtype == np.float32
  assert not last["image"][44:].any() and not last["label"][44:].any()
  split = data.load_split(cfg, "test")
  images = np.concatenate([b["image"] for b in batches])[:300]
  np.testing.assert_array_equal(images, split["image"][:300] / np.float32(255))
  labels = np.concatenate([b["label"] for b in batches])[:300]
  np.testing.assert_array_equal(labels, split["label"][:300])


def test_eval_process_slices_share_the_batch_count(make_config):
  cfg = make_config(name="translated", canvas_size=60)
  whole = list(data.eval_batches(cfg, 128))
  slices = [list(data.eval_batches(cfg, 128, process_index=p, process_count=2)) for p in (0, 1)]
  assert len(slices[0]) == len(slices[1]) == len(whole)
  for step, batch in enumerate(whole):
    for key in batch:
      np.testing.assert_array_equal(
          np.concatenate([slices[0][step][key], slices[1][step][key]]), batch[key])


def test_fixed_test_split_keeps_the_source_label_counts(make_config, data_dir):
  cfg = make_config(name="cluttered", canvas_size=60, eval_examples=None)
  labels = data.load_split(cfg, "test")["label"]
  _, source = sources.load_digits("mnist", "test", data_dir, download=False)
  np.testing.assert_array_equal(np.bincount(labels), np.bincount(source))


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=10, process_count=4), "batch_size must be a positive multiple"),
    (dict(batch_size=8, process_index=2, process_count=2), r"process_index must be in \[0, 2\)"),
    (dict(batch_size=0), "batch_size must be a positive multiple"),
    (dict(batch_size=8, process_count=0), "process_count must be an integer >= 1"),
])
def test_bad_batching_arguments_raise_before_any_batch(kwargs, message, make_config):
  cfg = make_config()
  batch_size = kwargs.pop("batch_size")
  with pytest.raises(ValueError, match=message):
    data.train_stream(cfg, batch_size, seed=0, **kwargs)
  with pytest.raises(ValueError, match=message):
    data.eval_batches(cfg, batch_size, **kwargs)


def test_bad_seed_and_start_step_raise(make_config):
  with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
    data.train_stream(make_config(), 8, seed=-1)
  with pytest.raises(ValueError, match="start_step must be an integer >= 0, got -2"):
    data.train_stream(make_config(), 8, seed=0, start_step=-2)
  with pytest.raises(ValueError, match="split must be one of"):
    data.load_split(make_config(), "validation")


FIXED_DATASETS = [dict(name="mnist", train_examples=100),
                  dict(name="cluttered", canvas_size=60, train_on_the_fly=False,
                       train_examples=100)]


def _assert_rows(batch, split, rows):
  """The batch's fields are the split's examples at `rows` (as float32 images)."""
  np.testing.assert_array_equal(batch["image"], split["image"][rows] / np.float32(255))
  for key in ("label", "center", "box_size"):
    np.testing.assert_array_equal(batch[key], split[key][rows])


@pytest.mark.parametrize("overrides", FIXED_DATASETS)
def test_fixed_batches_carry_their_example_index(overrides, make_config):
  cfg = make_config(**overrides)
  split = data.load_split(cfg, "train")
  for batch in _take(data.train_stream(cfg, 32, seed=4), 4):  # over an epoch boundary
    assert batch["index"].dtype == np.int32
    _assert_rows(batch, split, batch["index"])
  test = data.load_split(cfg, "test")
  batches = list(data.eval_batches(cfg, 128))
  index = np.concatenate([b["index"] for b in batches])
  np.testing.assert_array_equal(index, np.r_[np.arange(300), np.zeros(84, np.int32)])
  _assert_rows(batches[1], test, batches[1]["index"])


def test_on_the_fly_batches_carry_no_index(make_config):
  cfg = make_config(name="translated", canvas_size=60)
  assert "index" not in next(data.train_stream(cfg, 8, seed=0))


@pytest.mark.parametrize("overrides", FIXED_DATASETS)
def test_validation_is_the_train_tail_and_never_trained_on(overrides, make_config):
  cfg = make_config(**{**overrides, "train_examples": 40}, validation_examples=10)
  train, validation = data.load_split(cfg, "train"), data.load_split(cfg, "validation")
  for key in train:
    np.testing.assert_array_equal(validation[key], train[key][30:])
  batches = _take(data.train_stream(cfg, 16, seed=0), 15)  # 8 epochs of the 30 training examples
  seen = np.concatenate([b["index"] for b in batches])
  assert np.bincount(seen, minlength=40).tolist() == [8] * 30 + [0] * 10
  passes = list(data.eval_batches(cfg, 8, split="validation"))
  assert [b["mask"].sum() for b in passes] == [8, 2]
  np.testing.assert_array_equal(passes[1]["index"], [38, 39, 0, 0, 0, 0, 0, 0])
  _assert_rows(passes[0], train, passes[0]["index"])
  np.testing.assert_array_equal(data.split_indices(cfg, "train"), np.arange(30))
  np.testing.assert_array_equal(data.split_indices(cfg, "validation"), np.arange(30, 40))
  capped = make_config(**{**overrides, "train_examples": 40}, validation_examples=10,
                       eval_examples=4)
  assert sum(b["mask"].sum() for b in data.eval_batches(capped, 8, split="validation")) == 4


def test_validation_keeps_the_fixed_train_split(make_config):
  cfg = make_config(name="cluttered", canvas_size=60, train_on_the_fly=False, train_examples=50)
  whole = data.load_split(cfg, "train")
  cfg.validation_examples = 20
  assert data.load_split(cfg, "train") is whole  # same builder, same cached split
  np.testing.assert_array_equal(data.load_split(cfg, "validation")["image"], whole["image"][30:])


def test_on_the_fly_validation_digits_are_never_trained_on(make_config, data_dir):
  _, source = sources.load_digits("mnist", "train", data_dir, download=False)
  assert source[3] not in source[:3]  # so labels tell the fourth digit apart
  cfg = make_config(name="cluttered", canvas_size=60, train_examples=4, validation_examples=1)
  labels = np.concatenate([b["label"] for b in _take(data.train_stream(cfg, 64, seed=0), 2)])
  assert set(labels) == set(source[:3])
  validation = data.load_split(cfg, "validation")
  fixed = make_config(name="cluttered", canvas_size=60, train_examples=4, validation_examples=1,
                      train_on_the_fly=False)
  for key, value in data.load_split(fixed, "train").items():
    np.testing.assert_array_equal(validation[key], value[3:])
  assert validation["label"].tolist() == [source[3]]


def test_index_batches_follow_the_given_order_and_pad(make_config):
  cfg = make_config(name="mnist", train_examples=100, validation_examples=20)
  split = data.load_split(cfg, "train")
  chosen = np.array([7, 3, 99, 0, 42])
  batches = list(data.index_batches(cfg, "train", chosen, 2))
  assert [b["mask"].tolist() for b in batches] == [[1, 1], [1, 1], [1, 0]]
  assert [b["index"].tolist() for b in batches] == [[7, 3], [99, 0], [42, 0]]
  _assert_rows(batches[0], split, [7, 3])
  assert not batches[2]["image"][1].any() and batches[2]["label"][1] == 0
  halves = [list(data.index_batches(cfg, "train", chosen, 2, process_index=p, process_count=2))
            for p in (0, 1)]
  for step, batch in enumerate(batches):
    for key in batch:
      np.testing.assert_array_equal(
          np.concatenate([halves[0][step][key], halves[1][step][key]]), batch[key])
  tail = next(data.index_batches(cfg, "validation", np.array([99, 80]), 4))
  assert tail["index"].tolist() == [99, 80, 0, 0]
  np.testing.assert_array_equal(tail["image"][:2], split["image"][[99, 80]] / np.float32(255))
  assert list(data.index_batches(cfg, "test", np.array([], np.int64), 4)) == []


@pytest.mark.parametrize("split, indices, message", [
    ("validation", [79], r"indices of split 'validation' must lie in \[80, 100\), got 79"),
    ("train", [5, 100], r"must lie in \[0, 100\), got 100 at position 1"),
    ("test", [300], r"must lie in \[0, 300\)"),
    ("train", [1.0], "indices must be a 1-D integer array"),
])
def test_index_batches_reject_indices_outside_the_split(split, indices, message, make_config):
  cfg = make_config(name="mnist", train_examples=100, validation_examples=20)
  with pytest.raises(ValueError, match=message):
    data.index_batches(cfg, split, np.array(indices), 4)
