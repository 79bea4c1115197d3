"""Wu, Xu & Lee's cluttered translated MNIST ('cluttered_slope'): splits, seeds and placement."""

import itertools

import numpy as np
import pytest

from glimpse_jax import data
from glimpse_jax.data import builders
from glimpse_jax.data import canvas
from glimpse_jax.data import config as data_config
from glimpse_jax.data import sources

PAPER = dict(name="cluttered_slope", canvas_size=40, num_clutter=5, clutter_size=5,
             train_on_the_fly=False, train_examples=11_000, validation_examples=1_000,
             eval_examples=1_000)


@pytest.fixture
def make_config(data_dir, tmp_path):
  def make(cache="tfds", **overrides):
    cfg = data.default_config()
    cfg.update(dict(data_dir=str(data_dir), cache_dir=str(tmp_path / cache), download=False))
    cfg.update({**PAPER, **overrides})
    data.validate_config(cfg)
    return cfg
  return make


def _top_left(arrays, side=40):
  """`[N, 2]` (row, column) of each digit's top-left pixel, from its centre and box size."""
  center = (arrays["center"] + 1) / 2 * side  # [N, 2] (column, row) pixels
  corner = np.rint(center[:, ::-1] - arrays["box_size"][:, None] / 2).astype(np.int64)
  np.testing.assert_allclose(corner, center[:, ::-1] - arrays["box_size"][:, None] / 2, atol=1e-4)
  return corner


def _obeys_slope(top_left, room):
  """The rule of `canvas.slope_top_left`, in doubled pixel offsets from the centre."""
  row, column = top_left[:, 0], top_left[:, 1]
  return np.abs(2 * column - room) >= np.abs(2 * row - room)


def _shows_digit(arrays, top_left, digits):
  """[N] whether each canvas holds its digit at `top_left` (clutter only adds ink by max)."""
  return np.array([
      np.all(arrays["image"][i, r:r + 28, c:c + 28, 0] >= digits[i])
      for i, (r, c) in enumerate(top_left)])


def test_paper_splits_have_their_sizes_indices_and_batch_keys(make_config, data_dir):
  cfg = make_config()
  train, validation, test = (data.load_split(cfg, s) for s in ("train", "validation", "test"))
  assert train["image"].shape == (11_000, 40, 40, 1) and train["image"].dtype == np.uint8
  assert validation["image"].shape == (1_000, 40, 40, 1)
  assert test["image"].shape == (1_000, 40, 40, 1)
  for key, value in train.items():  # the validation split is the train split's tail
    np.testing.assert_array_equal(validation[key], value[10_000:])
  np.testing.assert_array_equal(data.split_indices(cfg, "validation"), np.arange(10_000, 11_000))
  batch = next(data.eval_batches(cfg, 256, split="validation"))
  assert set(batch) == {"image", "label", "center", "box_size", "index", "mask"}
  np.testing.assert_array_equal(batch["index"], np.arange(10_000, 10_256))
  np.testing.assert_array_equal(batch["image"], train["image"][10_000:10_256] / np.float32(255))
  seen = np.concatenate([b["index"] for b in itertools.islice(
      data.train_stream(cfg, 500, seed=0), 40)])  # two epochs of the 10,000 training canvases
  assert seen.max() < 10_000 and len(np.unique(seen)) == 10_000
  _, train_labels = sources.load_digits("mnist", "train", data_dir, download=False)
  _, test_labels = sources.load_digits("mnist", "test", data_dir, download=False)
  np.testing.assert_array_equal(train["label"], train_labels[:11_000])
  np.testing.assert_array_equal(test["label"], test_labels[:1_000])


def test_splits_are_a_function_of_the_seed(make_config):
  first = data.load_split(make_config(cache="a", eval_examples=500), "test")
  builders.forget_loaded_splits()
  again = data.load_split(make_config(cache="b", eval_examples=500), "test")
  other = data.load_split(make_config(cache="a", eval_examples=500, seed=1), "test")
  for key in first:
    assert first[key].tobytes() == again[key].tobytes(), key
  assert first["image"].tobytes() != other["image"].tobytes()
  assert np.mean(np.any(first["center"] != other["center"], axis=1)) > 0.8
  names = {builders.make_builder(make_config(**o), "test").info.full_name
           for o in ({}, dict(seed=1), dict(name="cluttered"))}
  assert names == {"cluttered_slope/mnist-40px-clutter5x5-seed0-test1000/1.0.0",
                   "cluttered_slope/mnist-40px-clutter5x5-seed1-test1000/1.0.0",
                   "cluttered/mnist-40px-clutter5x5-seed0-test1000/1.0.0"}


def test_digit_and_clutter_pieces_lie_inside_the_canvas(make_config, data_dir):
  cfg = make_config()
  spec = data_config.canvas_spec(cfg)
  assert (spec.num_clutter, spec.clutter_size, spec.placement) == (5, 5, "slope")
  images, labels = sources.load_digits("mnist", "train", data_dir, download=False)
  layout = canvas.sample_layout(np.random.default_rng(0), spec, np.arange(2_000), 60_000)
  assert layout.top_left.min() == 0 and layout.top_left.max() == 12
  assert layout.clutter_top_left.min() == 0 and layout.clutter_top_left.max() == 35
  assert layout.clutter_origin.min() == 0 and layout.clutter_origin.max() == 23
  assert np.all(layout.clutter_digit != layout.digit[:, None])
  examples = canvas.make_examples(layout, spec, images, labels)
  covered = np.zeros((2_000, 40, 40), dtype=bool)  # the digit's box and every piece's
  for b in range(2_000):
    r, c = layout.top_left[b]
    covered[b, r:r + 28, c:c + 28] = True
    for r, c in layout.clutter_top_left[b]:
      covered[b, r:r + 5, c:c + 5] = True
  assert not np.any(examples["image"][..., 0][~covered])
  assert _shows_digit(examples, layout.top_left, images[layout.digit]).all()
  np.testing.assert_array_equal(_top_left(examples), layout.top_left)
  stored = data.load_split(cfg, "test")
  corner = _top_left(stored)
  assert corner.min() >= 0 and corner.max() <= 12 and np.all(stored["box_size"] == 28)


def test_digits_come_from_the_matching_source_split(make_config, data_dir):
  cfg = make_config(train_examples=1_100, validation_examples=100, eval_examples=300)
  train_digits, _ = sources.load_digits("mnist", "train", data_dir, download=False)
  test_digits, _ = sources.load_digits("mnist", "test", data_dir, download=False)
  for split, digits, other in (("train", train_digits, test_digits),
                               ("validation", train_digits[1_000:], test_digits[1_000:]),
                               ("test", test_digits, train_digits)):
    arrays = data.load_split(cfg, split)
    n = arrays["label"].shape[0]
    corner = _top_left(arrays)
    assert _shows_digit(arrays, corner, digits[:n]).all(), split
    assert _shows_digit(arrays, corner, other[:n]).mean() < 0.05, split


def test_placement_follows_the_slope_rule(make_config):
  train = data.load_split(make_config(), "train")
  corner = _top_left(train)
  assert _obeys_slope(corner, 12).all()
  rows = np.bincount(corner[:, 0], minlength=13) / 11_000
  np.testing.assert_allclose(rows, 1 / 13, atol=0.015)  # rows uniform
  given = corner[corner[:, 0] == 3, 1]  # row offset -3: columns 0..3 and 9..12, each 1/8
  np.testing.assert_array_equal(np.unique(given), [0, 1, 2, 3, 9, 10, 11, 12])
  np.testing.assert_allclose(np.bincount(given, minlength=13)[[0, 1, 2, 3, 9, 10, 11, 12]]
                             / given.size, 1 / 8, atol=0.04)
  assert set(corner[corner[:, 0] == 0, 1]) == {0, 12}  # a top row: the top corners only
  assert len(np.unique(corner[corner[:, 0] == 6, 1])) == 13  # vertically centred: any column
  uniform = data.load_split(make_config(name="cluttered", train_examples=2_000,
                                        validation_examples=0), "train")
  assert np.mean(~_obeys_slope(_top_left(uniform), 12)) > 0.3  # the rule is a real constraint
  fresh = next(data.train_stream(make_config(train_on_the_fly=True), 512, seed=3))
  assert "index" not in fresh and _obeys_slope(_top_left(fresh), 12).all()


@pytest.mark.parametrize("room", [0, 1, 12, 13])
def test_slope_columns_are_uniform_over_the_allowed_ones(room):
  rng = np.random.default_rng(room)
  top_left = canvas.slope_top_left(rng, np.full(20_000, room))
  assert top_left.min() >= 0 and top_left.max() <= room
  assert _obeys_slope(top_left, room).all()
  for row in range(room + 1):
    allowed = [c for c in range(room + 1) if abs(2 * c - room) >= abs(2 * row - room)]
    columns = top_left[top_left[:, 0] == row, 1]
    np.testing.assert_array_equal(np.unique(columns), allowed)
    counts = np.bincount(columns, minlength=room + 1)[allowed]
    assert counts.min() > 0.6 * counts.mean(), (row, counts)


def test_fashion_mnist_source(make_config, data_dir):
  cfg = make_config(source="fashion_mnist", eval_examples=300)
  arrays = data.load_split(cfg, "test")
  items, labels = sources.load_digits("fashion_mnist", "test", data_dir, download=False)
  np.testing.assert_array_equal(arrays["label"], labels[:300])
  corner = _top_left(arrays)
  assert _obeys_slope(corner, 12).all() and _shows_digit(arrays, corner, items[:300]).all()
  assert builders.builder_config(cfg, "test").name == "fashion_mnist-40px-clutter5x5-seed0-test300"


def test_config_defaults_and_errors(make_config):
  cfg = make_config(num_clutter=None)
  assert data_config.num_clutter(cfg) == 5 and data.image_shape(cfg) == (40, 40, 1)
  with pytest.raises(ValueError, match="placement must be one of .*, got 'diagonal'"):
    canvas.CanvasSpec(40, placement="diagonal")
  with pytest.raises(ValueError, match="dataset.canvas_size must be >= 28"):
    make_config(canvas_size=27)
