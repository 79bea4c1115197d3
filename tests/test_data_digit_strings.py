"""Multi-digit MNIST strings: the canvas generator's guarantees, its captions, its splits, its
config, and the caption helpers they use."""

import itertools

import numpy as np
import pytest

from glimpse_jax import data
from glimpse_jax import glimpse
from glimpse_jax.data import captions
from glimpse_jax.data import config as data_config
from glimpse_jax.data import digit_strings

POOL = 50
SPEC = digit_strings.DigitStringSpec()


@pytest.fixture(scope="module")
def pool():
  """Digits with no zero pixel, so a digit alone on a canvas covers exactly its box."""
  rng = np.random.default_rng(0)
  images = rng.integers(1, 256, size=(POOL, 28, 28), dtype=np.uint8)
  labels = np.arange(POOL, dtype=np.uint8) % 10
  return images, labels


def _examples(pool, seed, spec=SPEC, batch=64):
  images, labels = pool
  layout = digit_strings.sample_layout(np.random.default_rng(seed), spec, batch, 0, POOL)
  return layout, digit_strings.make_examples(layout, spec, images, labels)


def _boxes(example, b, canvas_size):
  """`(row, column, side)` of each digit of canvas b, from its recorded centre and side."""
  boxes = []
  for center, side in zip(example["digit_center"][b], example["digit_size"][b]):
    if side == 0:
      break
    corner = glimpse.loc_to_pixel(center, canvas_size, canvas_size) - side / 2  # (col, row)
    np.testing.assert_allclose(corner, np.rint(corner), atol=1e-3)
    column, row = np.rint(corner).astype(int)
    boxes.append((row, column, int(side)))
  return boxes


def test_examples_have_the_batch_shapes(pool):
  _, ex = _examples(pool, seed=0, batch=7)
  assert ex["image"].shape == (7, 100, 100, 1) and ex["image"].dtype == np.uint8
  assert ex["caption"].shape == (7, 6) and ex["caption"].dtype == np.int32
  assert ex["caption_length"].shape == (7,) and ex["caption_length"].dtype == np.int32
  assert ex["digit_center"].shape == (7, 5, 2) and ex["digit_center"].dtype == np.float32
  assert ex["digit_size"].shape == (7, 5) and ex["digit_index"].shape == (7, 5)


def test_same_seed_same_bytes_other_seed_differs(pool):
  _, first = _examples(pool, seed=3)
  _, again = _examples(pool, seed=3)
  _, other = _examples(pool, seed=4)
  for key in first:
    assert first[key].tobytes() == again[key].tobytes()
  assert first["image"].tobytes() != other["image"].tobytes()


def test_counts_cover_the_range_and_sizes_the_scale_range(pool):
  layout, ex = _examples(pool, seed=1, batch=400)
  assert set(layout.count) == {2, 3, 4, 5}
  np.testing.assert_array_equal(ex["caption_length"], layout.count + 1)
  sizes = ex["digit_size"][ex["digit_size"] > 0]
  assert sizes.min() >= round(28 * 0.75) and sizes.max() <= round(28 * 1.25)
  assert np.count_nonzero(ex["digit_size"]) == layout.count.sum()


def test_captions_read_the_placed_digits_left_to_right(pool):
  images, labels = pool
  layout, ex = _examples(pool, seed=2, batch=200)
  for b in range(200):
    n = layout.count[b]
    assert ex["caption"][b, n] == captions.DIGITS.end
    assert np.all(ex["caption"][b, n + 1:] == captions.DIGITS.pad)
    np.testing.assert_array_equal(ex["caption"][b, :n], labels[ex["digit_index"][b, :n]])
    assert np.all(ex["digit_index"][b, n:] == -1)
    columns = ex["digit_center"][b, :n, 0]
    assert np.all(np.diff(columns) > 0), "slots are in reading order, by centre column"


def test_digits_lie_inside_the_canvas_and_keep_the_guarantees(pool):
  spec = digit_strings.DigitStringSpec(max_overlap=0.2)
  _, ex = _examples(pool, seed=5, spec=spec, batch=200)
  for b in range(200):
    boxes = _boxes(ex, b, 100)
    for row, column, side in boxes:
      assert 0 <= row and row + side <= 100 and 0 <= column and column + side <= 100
    for (r1, c1, s1), (r2, c2, s2) in itertools.combinations(boxes, 2):
      shared = (max(0, min(r1 + s1, r2 + s2) - max(r1, r2))
                * max(0, min(c1 + s1, c2 + s2) - max(c1, c2)))
      assert shared <= 0.2 * min(s1, s2)**2
      assert abs((c1 + s1 / 2) - (c2 + s2 / 2)) >= min(s1, s2) / 4


def test_a_digit_drawn_alone_is_its_resized_image(pool):
  images, _ = pool
  spec = digit_strings.DigitStringSpec(min_digits=1, max_digits=1, scale_range=(1.0, 1.0))
  _, ex = _examples(pool, seed=6, spec=spec, batch=10)
  for b in range(10):
    (row, column, side), = _boxes(ex, b, 100)
    image = ex["image"][b, ..., 0]
    np.testing.assert_array_equal(image[row:row + side, column:column + side],
                                  images[ex["digit_index"][b, 0]])
    assert np.count_nonzero(image) == side * side


def test_no_overlap_means_disjoint_boxes(pool):
  spec = digit_strings.DigitStringSpec(max_overlap=0.0)
  layout, ex = _examples(pool, seed=7, spec=spec, batch=50)
  ink = (ex["image"][..., 0] > 0).sum(axis=(1, 2))
  np.testing.assert_array_equal(ink, (ex["digit_size"]**2).sum(axis=1))  # no pixel shared
  assert layout.count.max() == 5


def test_a_crowded_spec_raises_naming_the_fields(pool):
  spec = digit_strings.DigitStringSpec(min_digits=5, scale_range=(1.5, 1.5), max_overlap=0.0)
  with pytest.raises(ValueError, match="could not place 5 digits.*lower max_digits"):
    _examples(pool, seed=0, spec=spec, batch=4)


# --- caption helpers --------------------------------------------------------------------------


def test_pad_captions_and_strip():
  tokens, length = captions.pad_captions([[3, 1], [], [9, 9, 9]], 4, captions.DIGITS)
  np.testing.assert_array_equal(tokens, [[3, 1, 10, 11], [10, 11, 11, 11], [9, 9, 9, 10]])
  np.testing.assert_array_equal(length, [3, 1, 4])
  assert captions.strip(tokens[0], captions.DIGITS) == [3, 1]
  assert captions.DIGITS.to_words(tokens[2]) == ["9", "9", "9"]
  with pytest.raises(ValueError, match="sequence 0 has 4 tokens; at most 3"):
    captions.pad_captions([[1, 2, 3, 4]], 4, captions.DIGITS)
  cut, cut_length = captions.pad_captions([[1, 2, 3, 4]], 4, captions.DIGITS, truncate=True)
  np.testing.assert_array_equal(cut, [[1, 2, 3, 10]])
  assert cut_length[0] == 4


def test_sequence_accuracy_compares_up_to_the_end_token():
  targets = [[3, 1, 10, 11], [4, 10, 11, 11], [5, 10, 11, 11], [7, 10, 11, 11]]
  predicted = [
      [3, 1, 10, 4, 4],  # right; what follows the end is ignored
      [4, 4, 10, 11, 11],  # one digit too many
      [5, 5, 5, 5, 5],  # never ends
      [1, 10, 11, 11, 11],  # wrong digit
  ]
  np.testing.assert_array_equal(
      captions.sequence_accuracy(targets, predicted, captions.DIGITS), [1, 0, 0, 0])


def test_build_vocabulary_orders_by_count_then_word():
  vocab = captions.build_vocabulary([["a", "dog"], ["a", "cat"], ["the", "dog", "a"]],
                                    min_count=2)
  assert vocab.words == ("<pad>", "<start>", "<end>", "<unk>", "a", "dog")
  assert vocab.ids(["dog", "cat"]) == [5, vocab.unk]
  with pytest.raises(ValueError, match="min_count must be an integer >= 1, got 0"):
    captions.build_vocabulary([], min_count=0)


# --- the dataset config and its splits (real MNIST) ------------------------------------------


@pytest.fixture
def make_config(data_dir):
  def make(**overrides):
    cfg = data.digit_strings_config()
    cfg.update(dict(data_dir=str(data_dir), download=False, eval_examples=120,
                    train_examples=1300, validation_examples=100))
    cfg.update(overrides)
    return cfg
  return make


@pytest.mark.parametrize("overrides, message", [
    (dict(max_digits=1), "dataset.max_digits must be >= min_digits=2, got 1"),
    (dict(min_digits=0), "dataset.min_digits must be an integer >= 1, got 0"),
    (dict(max_overlap=1.5), "dataset.max_overlap must be in \\[0, 1\\], got 1.5"),
    (dict(scale_range=(1.0, 4.0)), "dataset.canvas_size 100 cannot hold a digit scaled by 4.0"),
    (dict(scale_range=(2.0, 1.0)), "dataset.scale_range"),
    (dict(canvas_size=20), "dataset.canvas_size must be >= 28"),
    (dict(validation_examples=60_000, train_examples=70_000),
     "dataset.validation_examples must be < 60000"),
])
def test_validate_config_names_the_bad_field(overrides, message, make_config):
  with pytest.raises(ValueError, match=message):
    data.validate_config(make_config(**overrides))


def test_a_config_without_the_digit_fields_says_where_to_start():
  cfg = data.default_config()
  cfg.update(dict(name="digit_strings", canvas_size=100))
  with pytest.raises(ValueError, match="needs the fields.*digit_strings_config"):
    data.validate_config(cfg)


def test_splits_draw_from_their_own_source_digits(make_config):
  cfg = make_config()
  test = data.load_split(cfg, "test")
  train = data.load_split(cfg, "train")
  validation = data.load_split(cfg, "validation")
  assert test["image"].shape == (120, 100, 100, 1) and train["caption"].shape == (1300, 6)
  used = lambda arrays: arrays["digit_index"][arrays["digit_index"] >= 0]
  assert used(test).max() < 120  # the first eval_examples MNIST test digits
  assert train["digit_index"][:1200].max() < 1200  # the training pool: the rest of the first 1300
  assert used(validation).min() >= 1200 and used(validation).max() < 1300
  for key in validation:
    np.testing.assert_array_equal(validation[key], train[key][1200:])


def test_test_captions_are_the_mnist_test_labels(make_config, data_dir):
  from glimpse_jax.data import sources  # pylint: disable=g-import-not-at-top
  _, labels = sources.load_digits("mnist", "test", data_dir, download=False)
  test = data.load_split(make_config(), "test")
  for b in range(test["caption"].shape[0]):
    n = test["caption_length"][b] - 1
    np.testing.assert_array_equal(test["caption"][b, :n], labels[test["digit_index"][b, :n]])


def test_fixed_splits_follow_the_seed(make_config):
  first = data.load_split(make_config(seed=1), "test")
  again = data.load_split(make_config(seed=1), "test")
  other = data.load_split(make_config(seed=2), "test")
  assert first["image"].tobytes() == again["image"].tobytes()
  assert first["image"].tobytes() != other["image"].tobytes()


def test_streams_and_eval_passes_carry_the_captions(make_config):
  cfg = make_config()
  fresh = list(itertools.islice(data.train_stream(cfg, 8, seed=0), 2))
  assert fresh[0]["image"].dtype == np.float32 and fresh[0]["caption"].shape == (8, 6)
  assert "index" not in fresh[0]
  assert fresh[0]["image"].tobytes() != fresh[1]["image"].tobytes()
  again = next(data.train_stream(cfg, 8, seed=0))
  assert again["image"].tobytes() == fresh[0]["image"].tobytes()
  used = fresh[0]["digit_index"][fresh[0]["digit_index"] >= 0]
  assert used.max() < 1200, "training on the fly never shows a validation digit"
  half = next(data.train_stream(cfg, 8, seed=0, process_index=1, process_count=2))
  np.testing.assert_array_equal(half["caption"], fresh[0]["caption"][4:])
  batches = list(data.eval_batches(cfg, 64, split="validation"))
  assert [b["mask"].sum() for b in batches] == [64, 36]
  assert batches[0]["index"][0] == 1200 and batches[0]["caption"].shape == (64, 6)
