"""The tfds builders of fixed splits: naming, round trip, order, caching and prefixes."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from glimpse_jax import data
from glimpse_jax.data import builders
from glimpse_jax.data import config as data_config
from glimpse_jax.data import sources


def _config(data_dir, cache_dir, **overrides):
  cfg = data.default_config()
  cfg.update(dict(data_dir=str(data_dir), cache_dir=str(cache_dir), download=False,
                  eval_examples=200))
  cfg.update(overrides)
  data.validate_config(cfg)
  return cfg


def _reference(cfg, split):
  """The split generated directly by the NumPy generators, in example order."""
  images, labels = sources.load_digits(cfg.source, split, cfg.data_dir, download=False)
  n = cfg.eval_examples if split == "test" else cfg.train_examples
  chunks = [examples for _, examples in builders.fixed_chunks(
      data_config.canvas_spec(cfg), images, labels, cfg.seed, split, n)]
  return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}


def test_config_names_spell_out_every_parameter(tmp_path):
  cfg = _config("unused", tmp_path, name="cluttered", canvas_size=100, source="fashion_mnist")
  assert builders.builder_config(cfg, "test").name == (
      "fashion_mnist-100px-clutter8x8-seed0-test200")
  cfg = _config("unused", tmp_path, name="translated_scaled", canvas_size=100,
                scale_range=(0.75, 1.5), seed=3, train_examples=5000)
  assert builders.builder_config(cfg, "train").name == "mnist-100px-scale0.75-1.5-seed3-train5000"


@pytest.mark.parametrize("name", ["translated", "translated_scaled", "cluttered",
                                  "cluttered_slope"])
def test_every_data_changing_field_changes_the_name(name, tmp_path):
  base = dict(name=name, canvas_size=100)
  changes = [dict(source="fashion_mnist"), dict(canvas_size=112), dict(seed=1),
             dict(eval_examples=300)]
  if name == "translated_scaled":
    changes += [dict(scale_range=(0.5, 1.5)), dict(scale_range=(0.6, 2.0))]
  if name in ("cluttered", "cluttered_slope"):
    changes += [dict(num_clutter=3), dict(clutter_size=6)]
  names = {builders.builder_config(_config("x", tmp_path, **{**base, **c}), "test").name
           for c in changes + [{}]}
  assert len(names) == len(changes) + 1


def test_fields_that_do_not_change_the_data_keep_the_name(tmp_path):
  cfg = _config("x", tmp_path, name="translated", canvas_size=60)
  other = _config("x", tmp_path, name="translated", canvas_size=60, num_clutter=2,
                  scale_range=(1.0, 1.0), train_on_the_fly=False, validation_examples=500)
  for split in ("train", "test"):
    assert builders.builder_config(cfg, split).name == builders.builder_config(other, split).name


def test_rows_generated_alone_equal_the_split_rows(data_dir, tmp_path):
  cfg = _config(data_dir, tmp_path, name="cluttered", canvas_size=60, train_examples=1300)
  whole = _reference(cfg, "train")
  rows = builders.load_fixed_rows(cfg, "train", 900, 1300)  # across a generator boundary
  for key, value in whole.items():
    np.testing.assert_array_equal(rows[key], value[900:1300])
  assert builders.load_fixed_rows(cfg, "train", 900, 1300) is rows
  with pytest.raises(ValueError, match=r"rows \[5, 5\) must be a non-empty range"):
    builders.load_fixed_rows(cfg, "train", 5, 5)


def test_round_trip_restores_example_order_without_tensorflow(data_dir, tmp_path):
  cfg = _config(data_dir, tmp_path, name="cluttered", canvas_size=60)
  loaded = builders.load_fixed_split(cfg, "test")
  reference = _reference(cfg, "test")
  for key, value in reference.items():
    assert loaded[key].dtype == value.dtype
    np.testing.assert_array_equal(loaded[key], value)
  assert "tensorflow" not in sys.modules
  folder = tmp_path / "cluttered" / "mnist-60px-clutter4x8-seed0-test200" / "1.0.0"
  info = json.loads((folder / "dataset_info.json").read_text())
  assert info["version"] == "1.0.0" and info["fileFormat"] == "array_record"
  assert not list(pathlib.Path(data_dir).glob("**/*array_record*"))


def test_second_load_reads_the_cache_without_generating(data_dir, tmp_path, monkeypatch):
  cfg = _config(data_dir, tmp_path, name="translated", canvas_size=60)
  first = builders.load_fixed_split(cfg, "test")
  assert builders.load_fixed_split(cfg, "test") is first  # in memory
  builders.forget_loaded_splits()

  def fail(*args):
    raise AssertionError("the cached split was generated again")

  monkeypatch.setattr(builders, "fixed_chunks", fail)
  again = builders.load_fixed_split(cfg, "test")
  assert again is not first
  for key in first:
    np.testing.assert_array_equal(again[key], first[key])


def test_scaled_fashion_split_keeps_the_source_labels(data_dir, tmp_path):
  cfg = _config(data_dir, tmp_path, name="translated_scaled", canvas_size=100,
                source="fashion_mnist", eval_examples=150)
  loaded = data.load_split(cfg, "test")
  _, labels = sources.load_digits("fashion_mnist", "test", data_dir, download=False)
  np.testing.assert_array_equal(loaded["label"], labels[:150])
  assert loaded["image"].shape == (150, 100, 100, 1)
  assert np.all((loaded["box_size"] >= 14) & (loaded["box_size"] <= 56))


def test_a_shorter_split_is_a_prefix_of_a_longer_one(data_dir, tmp_path):
  short = _reference(_config(data_dir, tmp_path, name="cluttered", canvas_size=60,
                             eval_examples=300), "test")
  long = _reference(_config(data_dir, tmp_path, name="cluttered", canvas_size=60,
                            eval_examples=1300), "test")
  for key in short:
    np.testing.assert_array_equal(short[key], long[key][:300])


def test_split_digits_cycle_in_source_order(data_dir, tmp_path):
  cfg = _config(data_dir, tmp_path, name="translated", canvas_size=60, train_examples=64)
  split = _reference(cfg, "train")
  _, labels = sources.load_digits("mnist", "train", data_dir, download=False)
  np.testing.assert_array_equal(split["label"], labels[:64])
  other_seed = _reference(_config(data_dir, tmp_path, name="translated", canvas_size=60,
                                  train_examples=64, seed=1), "train")
  assert split["image"].tobytes() != other_seed["image"].tobytes()


def test_processes_sharing_a_cache_take_turns(data_dir, tmp_path):
  """Without the lock, the slower of two simultaneous builds fails to rename its output."""
  script = (
      "import hashlib, sys; from glimpse_jax import data; cfg = data.default_config(); "
      "cfg.update(dict(name='cluttered', canvas_size=60, eval_examples=2000, download=False, "
      "data_dir=sys.argv[1], cache_dir=sys.argv[2])); "
      "print(hashlib.md5(data.load_split(cfg, 'test')['image'].tobytes()).hexdigest())")
  runs = [subprocess.Popen([sys.executable, "-c", script, str(data_dir), str(tmp_path)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for _ in range(2)]
  results = [run.communicate(timeout=120) for run in runs]
  assert [run.returncode for run in runs] == [0, 0], results[0][1][-2000:] + results[1][1][-2000:]
  digests = [out.split()[-1] for out, _ in results]
  assert digests[0] == digests[1]


def test_cache_dir_precedence(monkeypatch, tmp_path):
  monkeypatch.setenv("GLIMPSE_CACHE_DIR", str(tmp_path / "from_env"))
  assert builders.resolve_cache_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"
  assert builders.resolve_cache_dir(None) == tmp_path / "from_env"
  monkeypatch.delenv("GLIMPSE_CACHE_DIR")
  assert builders.resolve_cache_dir(None) == pathlib.Path("~/.cache/glimpse_jax/tfds").expanduser()
