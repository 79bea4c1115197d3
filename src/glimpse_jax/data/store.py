"""Per-example arrays keyed by example index: written chunk by chunk, read back verified.

A stage that makes data for a later phase (a teacher's outputs, a model's guesses on part of the
training set) plans the example indices it covers, then writes one chunk of them at a time, so an
interrupted stage resumes with the chunks still pending. A store's folder holds:

    manifest.json      the plan: the sorted example indices, the chunk size and the caller's
                       `meta`; written once and never rewritten.
    chunk-00007.npz    the arrays of chunk 7, one `.npy` member per field, rows in index order.
    chunk-00007.json   its record: the .npz's sha256, its fields and a digest of the plan.
                       Written after the .npz, so a chunk is done once its record exists.

Every file is written under a temporary name and renamed into place, and each chunk has its own
record, so several processes may write different chunks at once. Equal arrays give equal bytes,
so the sha256 is one of the content. Reading verifies every chunk.
"""

import contextlib
import hashlib
import io
import json
import os
import pathlib
import tempfile
import zipfile

import ml_collections
import numpy as np

from glimpse_jax import files
from glimpse_jax.data import sources

MANIFEST = "manifest.json"
_FORMAT = 1
_RESERVED = ("stored",)  # the key `StoredFields.lookup` adds
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times keep the bytes a function of the arrays


class ExampleStore:
  """A folder of per-example arrays for a planned set of example indices.

  Example, a stage that resumes where it stopped:

      store = ExampleStore(folder)
      store.plan(indices, chunk_size=1024, meta=config.to_dict())
      for k in store.pending_chunks():
        chosen = store.chunk_indices(k)  # [n]
        store.write_chunk(k, {"logits": logits_of(chosen)})  # each [n, ...]
      outputs = ExampleStore.open(folder)  # StoredFields
  """

  def __init__(self, folder):
    self.folder = pathlib.Path(folder)
    self._plan = None

  @classmethod
  def open(cls, folder):
    """The verified `StoredFields` of the complete store in `folder` (see `read`)."""
    return cls(folder).read()

  def plan(self, indices, chunk_size, meta=None):
    """Records the plan, or checks that it equals the one recorded (a resumed stage).

    Args:
      indices: [M] distinct non-negative example indices, in any order (kept sorted).
      chunk_size: examples per chunk; the last chunk may be shorter.
      meta: a JSON-serializable dict (or ConfigDict) naming what makes the data, e.g. the
        source config and the producing model's workdir.

    Raises:
      ValueError: bad arguments, or a recorded plan that differs (the message says where).
    """
    plan = _make_plan(indices, chunk_size, meta)
    self.folder.mkdir(parents=True, exist_ok=True)
    path = self.folder / MANIFEST
    if not path.exists():
      _create_once(path, _dumps(plan))
    recorded = _read_json(path)
    differences = _plan_differences(recorded, plan)
    if differences:
      raise ValueError(
          f"{path} records another plan: {'; '.join(differences)}. Plan the same examples, "
          "chunk size and meta to resume, or use a new folder")
    self._plan = None  # read back from the file on next use

  @property
  def num_chunks(self):
    """Chunks of the plan."""
    indices, chunk_size = self._planned()[:2]
    return -(-indices.shape[0] // chunk_size)

  @property
  def num_done(self):
    """Chunks written under the plan."""
    return sum(self._record(k) is not None for k in range(self.num_chunks))

  @property
  def complete(self):
    """Whether every chunk is written."""
    return not self.pending_chunks()

  def pending_chunks(self):
    """The chunks not yet written under this plan, in order."""
    return [k for k in range(self.num_chunks) if self._record(k) is None]

  def chunk_indices(self, k):
    """[n] the sorted example indices of chunk `k` (read-only)."""
    self._check_chunk(k)
    indices, chunk_size = self._planned()[:2]
    return indices[k * chunk_size:(k + 1) * chunk_size]

  def write_chunk(self, k, arrays):
    """Writes chunk `k`'s arrays (each [n, ...] with rows in `chunk_indices(k)` order).

    Field names, dtypes and trailing shapes must be those of the chunks already written.
    Writing a chunk again replaces it.
    """
    arrays = _check_arrays(arrays, self.chunk_indices(k).shape[0], f"chunk {k}")
    fields = {name: [value.dtype.str, list(value.shape[1:])] for name, value in arrays.items()}
    for other in range(self.num_chunks):
      record = self._record(other) if other != k else None
      if record is not None:
        _check_same_fields(fields, f"chunk {k}", record["fields"], self._npz_path(other).name)
        break
    payload = _npz_bytes(arrays)
    files.write_atomic(self._npz_path(k), payload)
    record = {"file": self._npz_path(k).name, "sha256": hashlib.sha256(payload).hexdigest(),
              "num_examples": len(self.chunk_indices(k)), "fields": fields,
              "plan": self._planned()[2]}
    files.write_atomic(self._record_path(k), _dumps(record))

  def read(self):
    """Every chunk, verified against its sha256, as one `StoredFields`.

    Raises:
      FileNotFoundError: the folder holds no plan.
      ValueError: chunks are missing (says how many), or chunks disagree on their fields.
      ChecksumError: a chunk file whose sha256 differs from its record (names the file).
    """
    records = [self._record(k) for k in range(self.num_chunks)]
    missing = [k for k, record in enumerate(records) if record is None]
    if missing:
      raise ValueError(
          f"store {self.folder} is incomplete: {len(missing)} of {len(records)} chunks missing "
          f"(the first is {self._npz_path(missing[0]).name})")
    parts = []
    for k, record in enumerate(records):
      path = self._npz_path(k)
      payload = path.read_bytes()
      actual = hashlib.sha256(payload).hexdigest()
      if actual != record["sha256"]:
        raise sources.ChecksumError(
            f"{path}: sha256 {actual} differs from {record['sha256']} recorded in "
            f"{self._record_path(k).name}; the chunk is corrupt: delete both files and write "
            f"chunk {k} again")
      with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
      arrays = _check_arrays(arrays, record["num_examples"], path.name)
      fields = {name: [value.dtype.str, list(value.shape[1:])] for name, value in arrays.items()}
      _check_same_fields(fields, path.name, records[0]["fields"], self._npz_path(0).name)
      parts.append(arrays)
    indices, _, _, meta = self._planned()
    arrays = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return StoredFields(indices, arrays, meta)

  def _planned(self):
    """`(indices, chunk_size, plan digest, meta)` of the recorded plan."""
    if self._plan is None:
      path = self.folder / MANIFEST
      if not path.exists():
        raise FileNotFoundError(f"{path} is missing: call plan() before using the store")
      recorded = _read_json(path)
      indices = np.asarray(recorded["indices"], dtype=np.int64)
      indices.setflags(write=False)
      digest = hashlib.sha256(_dumps(recorded)).hexdigest()
      self._plan = (indices, recorded["chunk_size"], digest, recorded["meta"])
    return self._plan

  def _check_chunk(self, k):
    if not _is_int(k) or not 0 <= k < self.num_chunks:
      raise ValueError(f"chunk must be an integer in [0, {self.num_chunks}), got {k!r}")

  def _npz_path(self, k):
    return self.folder / f"chunk-{k:05d}.npz"

  def _record_path(self, k):
    return self.folder / f"chunk-{k:05d}.json"

  def _record(self, k):
    """Chunk `k`'s record if it is written under the current plan, else None."""
    path = self._record_path(k)
    if not path.exists() or not self._npz_path(k).exists():
      return None
    record = _read_json(path)
    return record if record.get("plan") == self._planned()[2] else None


class StoredFields:
  """The arrays of a complete store, in memory, looked up by example index.

  Attributes:
    indices: [M] int64 the sorted example indices that have a record.
    arrays: name -> [M, ...] read-only, row i belonging to example `indices[i]`.
    fields: name -> (dtype, trailing shape).
    meta: the plan's meta.
  """

  def __init__(self, indices, arrays, meta=None):
    indices = np.asarray(indices)
    if (indices.ndim != 1 or not indices.size or indices.dtype.kind not in "iu"
        or np.any(np.diff(indices) <= 0)):
      raise ValueError(
          f"indices must be a non-empty increasing 1-D integer array, got {indices!r}")
    self.indices = indices.astype(np.int64)
    self.indices.setflags(write=False)
    self.arrays = {name: value.view() for name, value in
                   _check_arrays(arrays, indices.shape[0], "stored arrays").items()}
    for value in self.arrays.values():
      value.setflags(write=False)  # on views, so the caller's arrays stay writable
    self.fields = {name: (value.dtype, value.shape[1:]) for name, value in self.arrays.items()}
    self.meta = meta

  def __len__(self):
    return self.indices.shape[0]

  def lookup(self, index):
    """The rows of some example indices.

    Args:
      index: [b] integer example indices.

    Returns:
      name -> [b, ...] for every field, plus `stored` bool [b]: False where an index has no
      record, whose fields are then zeros.
    """
    index = np.asarray(index)
    if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
      raise ValueError(f"index must be a 1-D integer array, got {index.dtype} {index.shape}")
    position = np.minimum(np.searchsorted(self.indices, index), len(self) - 1)  # [b]
    stored = self.indices[position] == index
    rows = {}
    for name, value in self.arrays.items():
      rows[name] = value[position]
      rows[name][~stored] = 0
    rows["stored"] = stored
    return rows


def _make_plan(indices, chunk_size, meta):
  indices = np.asarray(indices)
  if indices.ndim != 1 or not indices.size or indices.dtype.kind not in "iu":
    raise ValueError(
        f"indices must be a non-empty 1-D integer array, got {indices.dtype} {indices.shape}")
  if indices.min() < 0:
    raise ValueError(f"indices must be >= 0, got {indices.min()}")
  ordered = np.sort(indices)
  repeated = ordered[1:][ordered[1:] == ordered[:-1]]
  if repeated.size:
    raise ValueError(f"indices must be distinct, got {repeated[0]} more than once")
  if not _is_int(chunk_size) or chunk_size < 1:
    raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
  if isinstance(meta, ml_collections.ConfigDict):
    meta = meta.to_dict()
  if meta is None:
    meta = {}
  if not isinstance(meta, dict):
    raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
  try:  # tuples become lists, as when read back
    meta = json.loads(json.dumps(meta, sort_keys=True, default=_config_as_dict))
  except (TypeError, ValueError) as e:
    raise ValueError(f"meta must be JSON-serializable: {e}") from e
  return {"format": _FORMAT, "chunk_size": int(chunk_size),
          "indices": [int(i) for i in ordered], "meta": meta}


def _config_as_dict(value):
  """json.dumps's fallback: ConfigDicts nested in `meta` are written as dicts."""
  if isinstance(value, ml_collections.ConfigDict):
    return value.to_dict()
  raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serializable")


def _plan_differences(recorded, plan):
  """What differs between two plans, in words."""
  differences = []
  if recorded.get("format") != plan["format"]:
    differences.append(f"format {recorded.get('format')} recorded, {plan['format']} here")
  if recorded["chunk_size"] != plan["chunk_size"]:
    differences.append(f"chunk_size {recorded['chunk_size']} recorded, {plan['chunk_size']} given")
  old, new = recorded["indices"], plan["indices"]
  if old != new:
    if len(old) != len(new):
      differences.append(f"{len(old)} indices recorded, {len(new)} given")
    else:
      i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
      differences.append(f"the indices differ first at sorted position {i}: {old[i]} recorded, "
                         f"{new[i]} given")
  old, new = _flatten(recorded["meta"]), _flatten(plan["meta"])
  for key in sorted(set(old) | set(new)):
    if old.get(key, "<absent>") != new.get(key, "<absent>"):
      differences.append(
          f"meta{key} is {old.get(key, '<absent>')!r} recorded, {new.get(key, '<absent>')!r} given")
  return differences


def _flatten(meta, prefix=""):
  """A nested dict as `{"['a']['b']": leaf}`."""
  if not isinstance(meta, dict):
    return {prefix: meta}
  flat = {}
  for key, value in meta.items():
    flat.update(_flatten(value, f"{prefix}[{key!r}]"))
  return flat


def _is_int(value):
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_arrays(arrays, num_examples, where):
  """`arrays` as a name-sorted dict of arrays, each [num_examples, ...]; raises naming a bad one."""
  if not isinstance(arrays, dict) or not arrays:
    raise ValueError(f"{where}: arrays must be a non-empty dict of name -> array")
  for name in arrays:
    if not isinstance(name, str) or not name.isidentifier() or name in _RESERVED:
      raise ValueError(
          f"{where}: field name {name!r} must be an identifier other than {_RESERVED}")
  checked = {}
  for name in sorted(arrays):
    value = np.asarray(arrays[name])
    if value.dtype.hasobject:
      raise ValueError(f"{where}: field {name!r} holds Python objects; store numeric arrays")
    if value.ndim < 1 or value.shape[0] != num_examples:
      raise ValueError(
          f"{where}: field {name!r} has shape {value.shape}, expected a leading dimension of "
          f"{num_examples} (one row per example)")
    checked[name] = value
  return checked


def _check_same_fields(fields, where, expected, expected_where):
  for name in sorted(set(fields) | set(expected)):
    if name not in expected:
      raise ValueError(f"{where}: field {name!r} is not among the fields of {expected_where}, "
                       f"{sorted(expected)}")
    if name not in fields:
      raise ValueError(f"{where}: field {name!r} of {expected_where} is missing")
    if list(fields[name]) != list(expected[name]):
      (dtype, shape), (other_dtype, other_shape) = fields[name], expected[name]
      raise ValueError(
          f"{where}: field {name!r} is {np.dtype(dtype)} with trailing shape {tuple(shape)}, "
          f"but {np.dtype(other_dtype)} with {tuple(other_shape)} in {expected_where}")


def _npz_bytes(arrays):
  """An uncompressed .npz of the arrays whose bytes depend on the arrays only."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
    for name, value in arrays.items():
      with archive.open(zipfile.ZipInfo(f"{name}.npy", _ZIP_TIME), "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.ascontiguousarray(value), allow_pickle=False)
  return buffer.getvalue()


def _dumps(value):
  return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _read_json(path):
  try:
    return json.loads(path.read_bytes())
  except ValueError as e:
    raise ValueError(f"{path} is not valid JSON ({e}); delete it to write it again") from e


def _create_once(path, payload):
  """Writes `path` unless it exists; of processes racing to create it, one wins whole."""
  with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
    tmp.write(payload)
    tmp.flush()
    os.fsync(tmp.fileno())
  try:
    os.link(tmp.name, path)  # fails if `path` exists, unlike a rename
  except FileExistsError:
    pass
  except OSError:  # a file system without hard links: a rename, last writer wins
    os.replace(tmp.name, path)
  with contextlib.suppress(FileNotFoundError):
    os.unlink(tmp.name)
