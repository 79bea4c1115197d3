"""The dataset config: its defaults, its validation and the quantities derived from it."""

import math

import ml_collections
from ml_collections import config_dict

from glimpse_jax.data import canvas
from glimpse_jax.data import cifar
from glimpse_jax.data import digit_strings
from glimpse_jax.data import sources

DERIVED_NAMES = ("translated", "translated_scaled", "cluttered", "cluttered_slope")
CAPTION_NAMES = ("digit_strings",)  # canvases with a caption instead of a label
NAMES = ("mnist",) + DERIVED_NAMES + CAPTION_NAMES
GENERATED_NAMES = DERIVED_NAMES + CAPTION_NAMES  # drawn by a seeded generator
DIGIT_STRING_FIELDS = ("min_digits", "max_digits", "max_overlap")
SOURCES = sources.SOURCES + (cifar.SOURCE,)  # the digit sources first: canvases take only those


def default_config():
  """The dataset fields an experiment embeds as `config.dataset` and overrides.

  Fields:
    name: 'mnist' (plain source images), 'translated' (the digit at a uniformly random position
      inside a canvas; Mnih et al. 2014), 'translated_scaled' (rescaled by a random factor, then
      translated; Ba et al. 2015), 'cluttered' (translated among pieces of other digits;
      Mnih et al. 2014) or 'cluttered_slope' (Wu, Xu & Lee's cluttered translated MNIST: as
      'cluttered', but the digit's center lies on a line through the canvas center with a slope
      within +-45 degrees: its row is uniform where the digit fits, then its column is uniform
      where it fits and |row offset| <= |column offset| from the center). Their text samples "a y,
      then an x constrained ... along a slope within +-45 degrees", a phrase from the generators of
      digit sequences (Sonderby et al. 2015), where the slope joins consecutive digits and so
      constrains nothing for one digit; reading it as the slope of the line from the canvas center
      keeps their order (y first, x given y) and the usual sense of slope (rise over run). Their
      setting: canvas_size=40, num_clutter=5, clutter_size=5, train_on_the_fly=False,
      train_examples=11_000, validation_examples=1_000, eval_examples=1_000.
    source: the base images: 'mnist' or 'fashion_mnist' (28x28 grayscale digits; every variant
      takes either) or 'cifar10' (32x32 colour images, 50,000 train and 10,000 test; plain only,
      name='mnist' with canvas_size=32, as Brooks et al. run RAM on it).
    canvas_size: side of the square canvas; the source's image side for 'mnist' (28, or 32 for
      'cifar10'), 60 or 100 in the papers' canvases.
    num_clutter: clutter pieces per canvas for 'cluttered' and 'cluttered_slope'; None = the
      papers' counts: 4 up to 60x60, else 8 (Mnih et al.); 5 for 'cluttered_slope'.
    clutter_size: side of a clutter piece.
    scale_range: `(low, high)` digit scale factors for 'translated_scaled', drawn log-uniformly.
    train_on_the_fly: derived training batches are drawn fresh from (seed, step) (as in the
      papers) instead of from a fixed, cached train split.
    compose_on_device: when training canvases are drawn on the fly, the training loop receives
      their recipes (digits, positions, clutter pieces) and composes the canvases inside its
      jitted step (`device_canvas`); the same images as the host's. Other readers of
      `train_stream` get rendered canvases either way.
    sample_on_device: with `compose_on_device`, the training step also draws the recipes itself
      from its own key (`device_sampling`): the loop sends nothing per update. Same distribution,
      another generator than the host stream's, still a pure function of (seed, step).
    seed: the seed of the fixed (cached) splits.
    eval_examples: examples of the test split, and at most this many per evaluation pass (test or
      validation); None = the whole split.
    train_examples: base digits (on the fly) or canvases (fixed) of the train split, validation
      examples included; None = the whole source split (60,000; 50,000 for 'cifar10').
    validation_examples: the last this many examples of the fixed train split form the
      'validation' split and are never trained on (on the fly, training digits come from the
      first `train_examples - validation_examples` base digits only); 0 = no validation split.
      The fixed train split itself is unchanged, so its cache is shared. Placed digits are
      disjoint; the clutter of fixed canvases is cut from any digit of the source split.
    download: fetch missing IDX files (or the CIFAR-10 archive) from the mirrors.
    data_dir: folder of `<source>/` folders: the IDX files, `cifar10/cifar-10-python.tar.gz`;
      None = $GLIMPSE_DATA_DIR, else ~/.cache/glimpse_jax/data.
    cache_dir: folder of the generated tfds splits; None = $GLIMPSE_CACHE_DIR, else
      ~/.cache/glimpse_jax/tfds.
  """
  cfg = ml_collections.ConfigDict()
  cfg.name = "mnist"
  cfg.source = "mnist"
  cfg.canvas_size = sources.DIGIT_SIZE
  cfg.num_clutter = config_dict.placeholder(int)
  cfg.clutter_size = 8
  cfg.scale_range = (0.5, 2.0)
  cfg.train_on_the_fly = True
  cfg.compose_on_device = True
  cfg.sample_on_device = False
  cfg.seed = 0
  cfg.eval_examples = config_dict.placeholder(int)
  cfg.train_examples = config_dict.placeholder(int)
  cfg.validation_examples = 0
  cfg.download = True
  cfg.data_dir = config_dict.placeholder(str)
  cfg.cache_dir = config_dict.placeholder(str)
  return cfg


def digit_strings_config():
  """The dataset config of the multi-digit MNIST strings, name 'digit_strings'.

  `default_config()`'s fields (`scale_range` the digits' scale range, `train_examples` and
  `eval_examples` canvases of the fixed splits) plus:
    min_digits, max_digits: how many digits a canvas holds (uniform in between); captions have
      max_digits + 1 tokens.
    max_overlap: largest fraction of the smaller box two digits' boxes may share.
  See `digit_strings` for the canvases and `digit_string_splits` for the splits.
  """
  cfg = default_config()
  spec = digit_strings.DigitStringSpec()
  cfg.name = "digit_strings"
  cfg.canvas_size = spec.canvas_size
  cfg.scale_range = spec.scale_range
  for field in DIGIT_STRING_FIELDS:
    cfg[field] = getattr(spec, field)
  return cfg


def validate_config(cfg):
  """Raises ValueError naming the first field that holds a value the datasets cannot use."""
  if cfg.name not in NAMES:
    raise ValueError(f"dataset.name must be one of {NAMES}, got {cfg.name!r}")
  if cfg.source not in SOURCES:
    raise ValueError(f"dataset.source must be one of {SOURCES}, got {cfg.source!r}")
  if cfg.name != "mnist" and cfg.source not in sources.SOURCES:
    raise ValueError(
        f"dataset.name={cfg.name!r} draws canvases of 28x28 grayscale digits, which "
        f"dataset.source={cfg.source!r} does not have: use name='mnist' (its plain images) or "
        f"a source of {sources.SOURCES}")
  _check_int("canvas_size", cfg.canvas_size, low=1)
  side = source_image_shape(cfg.source)[0]
  if cfg.name == "mnist" and cfg.canvas_size != side:
    raise ValueError(
        f"dataset.canvas_size must be {side} for name='mnist' (the side of the "
        f"{cfg.source} images), got {cfg.canvas_size}"
        + ("; use name='translated' for a larger canvas" if cfg.source in sources.SOURCES
           else ""))
  if cfg.canvas_size < sources.DIGIT_SIZE:
    raise ValueError(
        f"dataset.canvas_size must be >= {sources.DIGIT_SIZE} (a digit's side), got "
        f"{cfg.canvas_size}")
  if cfg.num_clutter is not None:
    _check_int("num_clutter", cfg.num_clutter, low=0)
  _check_int("clutter_size", cfg.clutter_size, low=1)
  if cfg.clutter_size > sources.DIGIT_SIZE:
    raise ValueError(
        f"dataset.clutter_size must be <= {sources.DIGIT_SIZE}, got {cfg.clutter_size}")
  _check_scale_range(cfg)
  for field in ("compose_on_device", "sample_on_device"):
    if not isinstance(cfg.get(field, False), bool):
      raise ValueError(f"dataset.{field} must be True or False, got {cfg[field]!r}")
  if cfg.get("sample_on_device", False) and not cfg.get("compose_on_device", False):
    raise ValueError("dataset.sample_on_device=True draws canvases inside the step, which needs "
                     "dataset.compose_on_device=True")
  if cfg.name == "translated_scaled" and max_digit_size(cfg) > cfg.canvas_size:
    raise ValueError(
        f"dataset.canvas_size {cfg.canvas_size} cannot hold a digit scaled by "
        f"{cfg.scale_range[1]} ({max_digit_size(cfg)} pixels); raise canvas_size or lower "
        "scale_range")
  if cfg.name in CAPTION_NAMES:
    _check_digit_strings(cfg)
  _check_int("seed", cfg.seed, low=0)
  for field, split in (("eval_examples", "test"), ("train_examples", "train")):
    value = cfg[field]
    if value is None:
      continue
    _check_int(field, value, low=1)
    size = source_split_size(cfg.source, split)
    if cfg.name == "mnist" and value > size:
      raise ValueError(
          f"dataset.{field} must be <= {size} (the {cfg.source} {split} split) for "
          f"name='mnist', got {value}")
  if (cfg.name in DERIVED_NAMES and cfg.train_on_the_fly and cfg.train_examples is not None
      and cfg.train_examples > sources.SPLIT_SIZES["train"]):
    raise ValueError(
        f"dataset.train_examples must be <= {sources.SPLIT_SIZES['train']} base digits when "
        f"train_on_the_fly, got {cfg.train_examples}")
  _check_validation(cfg)


def _check_digit_strings(cfg):
  missing = [field for field in DIGIT_STRING_FIELDS if field not in cfg]
  if missing:
    raise ValueError(
        f"dataset.name={cfg.name!r} needs the fields {missing}: start from "
        "data.digit_strings_config()")
  try:
    digit_string_spec(cfg)
  except ValueError as e:
    raise ValueError(f"dataset.{e}") from e
  if cfg.validation_examples and cfg.validation_examples >= sources.SPLIT_SIZES["train"]:
    raise ValueError(
        f"dataset.validation_examples must be < {sources.SPLIT_SIZES['train']} (the validation "
        f"canvases' digit pool leaves the rest to training), got {cfg.validation_examples}")


def _check_int(field, value, *, low):
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f"dataset.{field} must be an integer >= {low}, got {value!r}")


def _check_validation(cfg):
  _check_int("validation_examples", cfg.validation_examples, low=0)
  if not cfg.validation_examples:
    return
  n = split_size(cfg, "train")
  if cfg.validation_examples >= n:
    raise ValueError(
        f"dataset.validation_examples must be < the {n} examples of the train split "
        f"(dataset.train_examples), got {cfg.validation_examples}")
  if cfg.name in DERIVED_NAMES and n > sources.SPLIT_SIZES["train"]:
    raise ValueError(
        f"dataset.validation_examples needs dataset.train_examples <= "
        f"{sources.SPLIT_SIZES['train']}, got {n}: a longer fixed train split reuses base "
        "digits, so validation canvases would show digits that training canvases show")


def _check_scale_range(cfg):
  scale_range = tuple(cfg.scale_range)
  if (len(scale_range) != 2 or not all(isinstance(s, (int, float)) for s in scale_range)
      or not 0 < scale_range[0] <= scale_range[1] or not all(map(math.isfinite, scale_range))):
    raise ValueError(
        f"dataset.scale_range must be (low, high) with 0 < low <= high, got {cfg.scale_range!r}")
  if round(sources.DIGIT_SIZE * scale_range[0]) < 1:
    raise ValueError(
        f"dataset.scale_range low {scale_range[0]} shrinks a digit below one pixel")


def image_shape(cfg):
  """`(H, W, C)` of the images the config yields: C = 3 for 'cifar10', else 1."""
  return (cfg.canvas_size, cfg.canvas_size, source_image_shape(cfg.source)[2])


def num_classes(cfg):
  """Number of labels of the config's source (10 for every source)."""
  return cifar.NUM_CLASSES if cfg.source == cifar.SOURCE else sources.NUM_CLASSES


def source_image_shape(source):
  """`(H, W, C)` of a source's plain images."""
  if source == cifar.SOURCE:
    return (cifar.IMAGE_SIZE, cifar.IMAGE_SIZE, cifar.CHANNELS)
  return (sources.DIGIT_SIZE, sources.DIGIT_SIZE, 1)


def source_split_size(source, split):
  """Examples of a source's whole 'train' or 'test' split."""
  if source == cifar.SOURCE:
    return cifar.SPLIT_SIZES[split]
  return sources.SPLIT_SIZES[split]


def num_clutter(cfg):
  """Clutter pieces per canvas: the config's value, else the papers' (see `default_config`)."""
  if cfg.name not in ("cluttered", "cluttered_slope"):
    return 0
  if cfg.num_clutter is not None:
    return cfg.num_clutter
  if cfg.name == "cluttered_slope":
    return 5
  return 4 if cfg.canvas_size <= 60 else 8


def canvas_spec(cfg):
  """The `canvas.CanvasSpec` of a derived dataset config."""
  if cfg.name not in DERIVED_NAMES:
    raise ValueError(f"dataset.name must be one of {DERIVED_NAMES}, got {cfg.name!r}")
  scale_range = None
  if cfg.name == "translated_scaled":
    scale_range = tuple(float(s) for s in cfg.scale_range)
  placement = "slope" if cfg.name == "cluttered_slope" else "uniform"
  return canvas.CanvasSpec(
      cfg.canvas_size, scale_range, num_clutter(cfg), cfg.clutter_size, placement)


def digit_string_spec(cfg):
  """The `digit_strings.DigitStringSpec` of a 'digit_strings' config."""
  if cfg.name not in CAPTION_NAMES:
    raise ValueError(f"dataset.name must be one of {CAPTION_NAMES}, got {cfg.name!r}")
  return digit_strings.DigitStringSpec(
      canvas_size=cfg.canvas_size, min_digits=cfg.min_digits, max_digits=cfg.max_digits,
      scale_range=tuple(cfg.scale_range), max_overlap=cfg.max_overlap)


def max_digit_size(cfg):
  """Side in pixels of the largest digit the config can place."""
  if cfg.name != "translated_scaled":
    return sources.DIGIT_SIZE
  return round(sources.DIGIT_SIZE * cfg.scale_range[1])


def index_range(cfg, split):
  """`(start, stop)` of the example indices a split's batches carry.

  'train' is what the training stream draws from, the fixed train split less its validation tail;
  'validation' is that tail, indexed by its positions in the fixed train split; 'test' is the
  fixed test split.
  """
  if split not in ("train", "validation", "test"):
    raise ValueError(f"split must be one of ('train', 'validation', 'test'), got {split!r}")
  if split == "test":
    return 0, split_size(cfg, "test")
  n = split_size(cfg, "train")
  held_out = n - cfg.validation_examples
  return (0, held_out) if split == "train" else (held_out, n)


def split_size(cfg, split):
  """Examples of a fixed split: `eval_examples` for 'test', `train_examples` for 'train'."""
  if split not in sources.SPLITS:
    raise ValueError(f"split must be one of {sources.SPLITS}, got {split!r}")
  requested = cfg.eval_examples if split == "test" else cfg.train_examples
  return source_split_size(cfg.source, split) if requested is None else requested
