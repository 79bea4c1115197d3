"""The NumPy canvas generators, on small synthetic digit pools."""

import numpy as np
import pytest

from glimpse_jax import glimpse
from glimpse_jax.data import canvas

POOL = 40


@pytest.fixture(scope="module")
def pool():
  """Digits with no zero pixel, so a digit's footprint on a canvas is exactly its nonzero pixels."""
  rng = np.random.default_rng(0)
  images = rng.integers(1, 256, size=(POOL, 28, 28), dtype=np.uint8)
  labels = np.arange(POOL, dtype=np.uint8) % 10
  return images, labels


def _examples(spec, pool, seed, batch=16):
  images, labels = pool
  rng = np.random.default_rng(seed)
  digit = rng.integers(0, POOL, size=batch)
  layout = canvas.sample_layout(rng, spec, digit, POOL)
  return layout, canvas.make_examples(layout, spec, images, labels)


def _box(center, box_size, canvas_size):
  """Top-left pixel (row, col) of the box a recorded centre and side describe (float32-exact)."""
  corner = glimpse.loc_to_pixel(center, canvas_size, canvas_size) - box_size / 2  # (col, row)
  np.testing.assert_allclose(corner, np.rint(corner), atol=1e-3)
  column, row = np.rint(corner).astype(int)
  return row, column


SPECS = [
    canvas.CanvasSpec(60),
    canvas.CanvasSpec(100, scale_range=(0.5, 2.0)),
    canvas.CanvasSpec(60, num_clutter=4, clutter_size=8),
]


@pytest.mark.parametrize("spec", SPECS)
def test_same_seed_same_bytes_other_seed_differs(spec, pool):
  _, first = _examples(spec, pool, seed=3)
  _, again = _examples(spec, pool, seed=3)
  _, other = _examples(spec, pool, seed=4)
  for key in first:
    assert first[key].tobytes() == again[key].tobytes()
  assert first["image"].tobytes() != other["image"].tobytes()


@pytest.mark.parametrize("spec", SPECS)
def test_examples_have_the_batch_shapes(spec, pool):
  _, ex = _examples(spec, pool, seed=0, batch=5)
  side = spec.canvas_size
  assert ex["image"].shape == (5, side, side, 1) and ex["image"].dtype == np.uint8
  assert ex["label"].shape == (5,) and ex["label"].dtype == np.int32
  assert ex["center"].shape == (5, 2) and ex["center"].dtype == np.float32
  assert ex["box_size"].shape == (5,) and ex["box_size"].dtype == np.float32
  assert np.all(np.abs(ex["center"]) < 1)


def test_translated_crop_at_recorded_center_is_the_digit(pool):
  spec = canvas.CanvasSpec(60)
  layout, ex = _examples(spec, pool, seed=1, batch=32)
  images, labels = pool
  np.testing.assert_array_equal(ex["box_size"], 28)
  np.testing.assert_array_equal(ex["label"], labels[layout.digit])
  for b in range(32):
    row, col = _box(ex["center"][b], 28, 60)
    image = ex["image"][b, ..., 0]
    np.testing.assert_array_equal(image[row:row + 28, col:col + 28], images[layout.digit[b]])
    assert np.count_nonzero(image) == 28 * 28


def test_translated_positions_cover_the_canvas(pool):
  layout, _ = _examples(canvas.CanvasSpec(60), pool, seed=2, batch=2000)
  assert layout.top_left.min() == 0 and layout.top_left.max() == 60 - 28


def test_scaled_box_matches_the_resized_digit(pool):
  spec = canvas.CanvasSpec(100, scale_range=(0.5, 2.0))
  layout, ex = _examples(spec, pool, seed=5, batch=64)
  images, _ = pool
  sizes = ex["box_size"].astype(int)
  assert sizes.min() >= 14 and sizes.max() <= 56 and len(np.unique(sizes)) > 10
  for b in range(64):
    row, col = _box(ex["center"][b], sizes[b], 100)
    image = ex["image"][b, ..., 0]
    rows, cols = np.nonzero(image)
    assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (
        row, col, row + sizes[b], col + sizes[b])
    expected = canvas.resize_digits(images[layout.digit[b]][None], int(sizes[b]))[0]
    np.testing.assert_array_equal(image[row:row + sizes[b], col:col + sizes[b]], expected)


def test_scale_factors_are_log_uniform(pool):
  layout, _ = _examples(canvas.CanvasSpec(100, scale_range=(0.5, 2.0)), pool, seed=6, batch=4000)
  shrunk, grown = np.mean(layout.size < 28), np.mean(layout.size > 28)
  assert abs(shrunk - grown) < 0.05


def test_clutter_pieces_and_digit_combine_by_max(pool):
  spec = canvas.CanvasSpec(60, num_clutter=4, clutter_size=8)
  layout, ex = _examples(spec, pool, seed=7, batch=8)
  images, _ = pool
  assert layout.clutter_digit.shape == (8, 4) and layout.clutter_top_left.shape == (8, 4, 2)
  assert np.all(layout.clutter_digit != layout.digit[:, None])
  for b in range(8):
    expected = np.zeros((60, 60), dtype=np.uint8)
    for k in range(4):
      (sr, sc), (r, c) = layout.clutter_origin[b, k], layout.clutter_top_left[b, k]
      piece = images[layout.clutter_digit[b, k], sr:sr + 8, sc:sc + 8]
      expected[r:r + 8, c:c + 8] = np.maximum(expected[r:r + 8, c:c + 8], piece)
    r, c = layout.top_left[b]
    expected[r:r + 28, c:c + 28] = np.maximum(expected[r:r + 28, c:c + 28], images[layout.digit[b]])
    np.testing.assert_array_equal(ex["image"][b, ..., 0], expected)


def test_clutter_count_and_piece_size_set_the_inked_area():
  """On an otherwise empty pool with solid digits, clutter ink is K pieces of P x P pixels."""
  images = np.zeros((3, 28, 28), dtype=np.uint8)
  images[1:] = 255
  spec = canvas.CanvasSpec(400, num_clutter=3, clutter_size=5)
  digit = np.zeros(20, dtype=np.int64)  # the placed digit is blank: only clutter shows
  layout = canvas.sample_layout(np.random.default_rng(0), spec, digit, 3)
  image = canvas.render(layout, spec, images)
  tops = layout.clutter_top_left  # [20, 3, 2]
  overlap_free = [
      b for b in range(20)
      if not any(np.all(np.abs(tops[b, i] - tops[b, j]) < 5) for i in range(3) for j in range(i))]
  assert len(overlap_free) > 15
  for b in overlap_free:
    assert np.count_nonzero(image[b]) == 3 * 5 * 5


def test_rows_of_a_layout_render_the_same_canvases(pool):
  spec = canvas.CanvasSpec(60, num_clutter=4)
  layout, ex = _examples(spec, pool, seed=8, batch=12)
  part = canvas.make_examples(layout.rows(4, 8), spec, *pool)
  for key in ex:
    np.testing.assert_array_equal(part[key], ex[key][4:8])


def test_resize_digits_identity_constant_and_area():
  rng = np.random.default_rng(9)
  digits = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
  np.testing.assert_array_equal(canvas.resize_digits(digits, 28), digits)
  flat = np.full((1, 28, 28), 77, dtype=np.uint8)
  for size in (5, 14, 41, 56):
    np.testing.assert_array_equal(canvas.resize_digits(flat, size), 77)
  halved = digits.astype(np.float64).reshape(3, 14, 2, 14, 2).mean(axis=(2, 4))
  np.testing.assert_array_equal(canvas.resize_digits(digits, 14), np.rint(halved))
  with pytest.raises(ValueError, match="size must be >= 1, got 0"):
    canvas.resize_digits(digits, 0)


def test_center_follows_the_location_convention():
  spec = canvas.CanvasSpec(60)
  layout = canvas.Layout(
      digit=np.zeros(2, np.int64), size=np.array([28, 28]), top_left=np.array([[0, 0], [0, 32]]),
      clutter_digit=np.zeros((2, 0), np.int64), clutter_origin=np.zeros((2, 0, 2), np.int64),
      clutter_top_left=np.zeros((2, 0, 2), np.int64))
  center, box_size = canvas.targets(layout, spec)
  # Top-left digit: centre pixel (14, 14); right-most digit: column 32 + 14 = 46, row 14.
  np.testing.assert_allclose(center, [[14 / 30 - 1, 14 / 30 - 1], [46 / 30 - 1, 14 / 30 - 1]],
                             rtol=1e-6)
  np.testing.assert_array_equal(box_size, [28, 28])


def _sonderby_reference(rng, canvas_size, digit=28):
  """(row, column) of one digit as Sonderby's `create_mnist_sequence.py` draws it, line by line:
  `x_offset = (W - 28) // 2; x_offset += choice(range(-x_offset, x_offset)); y_offset =
  choice(range(W))`, then a digit running past the bottom is moved up until it fits."""
  x_offset = (canvas_size - digit) // 2
  x_offset += rng.choice(range(-x_offset, x_offset))
  y_start = rng.choice(range(canvas_size))
  y_end = y_start + digit
  if y_end > canvas_size - 1:
    m = canvas_size - y_end
    y_start += m
  return y_start, x_offset


def test_sonderby_placement_matches_the_scripts_statistics():
  spec = canvas.CanvasSpec(40, num_clutter=5, clutter_size=5, placement="sonderby")
  n = 40_000
  layout = canvas.sample_layout(np.random.default_rng(0), spec, np.zeros(n, np.int64), POOL)
  reference = np.array([_sonderby_reference(np.random.default_rng([1, i]), 40) for i in range(n)])
  for name, drawn in (("layout", layout.top_left), ("reference", reference)):
    row, column = drawn[:, 0], drawn[:, 1]
    assert (row.min(), row.max(), column.min(), column.max()) == (0, 12, 0, 11), name
    assert abs(np.mean(row == 12) - 0.70) < 0.01, name  # 28 of the 40 row draws
    np.testing.assert_allclose(np.bincount(row, minlength=13)[:12] / n, 0.025, atol=0.004)
    np.testing.assert_allclose(np.bincount(column, minlength=12) / n, 1 / 12, atol=0.006)
  # The two agree in distribution: every (row, column) cell within sampling error.
  cells = lambda d: np.bincount(13 * d[:, 1] + d[:, 0], minlength=12 * 13) / n
  np.testing.assert_allclose(cells(layout.top_left), cells(reference), atol=0.006)
  # Clutter corners stop one short of the last place a 5x5 piece fits, as `randint(side - 5)`.
  assert (layout.clutter_top_left.min(), layout.clutter_top_left.max()) == (0, 34)
  assert (layout.clutter_origin.min(), layout.clutter_origin.max()) == (0, 22)


def test_sonderby_canvases_overwrite_clutter_then_add_the_digit_saturating(pool):
  spec = canvas.CanvasSpec(40, num_clutter=5, clutter_size=5, placement="sonderby")
  layout, ex = _examples(spec, pool, seed=3, batch=8)
  images, _ = pool
  for b in range(8):
    expected = np.zeros((40, 40), dtype=np.float64)
    for k in range(5):
      (sr, sc), (r, c) = layout.clutter_origin[b, k], layout.clutter_top_left[b, k]
      expected[r:r + 5, c:c + 5] = images[layout.clutter_digit[b, k], sr:sr + 5, sc:sc + 5]
    r, c = layout.top_left[b]
    expected[r:r + 28, c:c + 28] += images[layout.digit[b]]
    np.testing.assert_array_equal(ex["image"][b, ..., 0], np.clip(expected, 0, 255))
  # The pool has no zero pixel: the sums saturate where clutter meets the digit.
  assert np.any(ex["image"] == 255)
  with pytest.raises(ValueError, match="scale_range must be None"):
    canvas.CanvasSpec(40, scale_range=(0.5, 2.0), placement="sonderby")
  with pytest.raises(ValueError, match="canvas_size >= 30"):
    canvas.CanvasSpec(29, placement="sonderby")


def test_fixed_splits_take_the_placement_field_and_name_it():
  from glimpse_jax import data
  from glimpse_jax.data import builders
  cfg = data.default_config()
  cfg.update(dict(name="cluttered_slope", canvas_size=40, num_clutter=5, clutter_size=5,
                  train_on_the_fly=False, train_examples=11_000, eval_examples=1_000))
  assert builders.builder_config(cfg, "test").name == "mnist-40px-clutter5x5-seed0-test1000"
  for placement, suffix in ((None, ""), ("slope", ""), ("sonderby", "-sonderby")):
    with cfg.unlocked():
      cfg.placement = placement
    bc = builders.builder_config(cfg, "test")
    assert bc.name == f"mnist-40px-clutter5x5{suffix}-seed0-test1000"
    assert bc.spec.placement == (placement or "slope")
  with cfg.unlocked():
    cfg.placement = "wedge"
  with pytest.raises(ValueError, match="dataset.placement must be one of"):
    builders.builder_config(cfg, "test")
