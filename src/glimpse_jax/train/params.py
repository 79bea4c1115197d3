"""Parameter subtrees named by '/'-joined paths: grafting from another run and freezing.

A path names nested dict keys of a parameter pytree, e.g. 'params/encoder' for the encoder of a
Flax model; '' is the whole tree.
"""

from typing import Any

import jax
import numpy as np


def _keys(path: str) -> list[str]:
  return [key for key in path.split('/') if key]


def _key_name(entry) -> str:
  for attr in ('key', 'name', 'idx'):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def path_of(key_path) -> str:
  """The '/'-joined form of a `jax.tree_util` key path."""
  return '/'.join(_key_name(entry) for entry in key_path)


def subtree(tree: Any, path: str, *, side: str = 'parameters') -> Any:
  """The subtree of `tree` at `path`; ValueError naming the missing key and what is there."""
  node, walked = tree, []
  for key in _keys(path):
    if not isinstance(node, dict) or key not in node:
      there = sorted(node) if isinstance(node, dict) else type(node).__name__
      raise ValueError(f'{side} have no {"/".join(walked + [key])!r} (at '
                       f'{"/".join(walked) or "the top"}: {there})')
    node, walked = node[key], walked + [key]
  return node


def _shapes(tree: Any) -> dict[str, str]:
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  return {path_of(p): f'{np.dtype(x.dtype).name}{list(x.shape)}' for p, x in leaves}


def graft(target: Any, source: Any, paths: tuple[str, ...], *, source_name: str = 'source') -> Any:
  """`target` with the subtrees at `paths` taken from `source` (same structure and shapes).

  Args:
    target: the fresh parameters (arrays or ShapeDtypeStructs).
    source: parameters restored from another run.
    paths: the subtrees to take; ('',) takes the whole tree.
    source_name: how errors name `source` (e.g. its workdir).

  Raises:
    ValueError: a path is missing on either side, or the two subtrees differ in keys, shapes or
      dtypes; the message lists each differing path with its shape on both sides.
  """
  result = target
  for path in paths:
    theirs = subtree(source, path, side=f'the parameters of {source_name}')
    ours = subtree(target, path, side='this model\'s parameters')
    mine, other = _shapes(ours), _shapes(theirs)
    differences = [f'  {path}/{leaf}: {other.get(leaf, "missing")} in {source_name}, '
                   f'{mine.get(leaf, "missing")} here'
                   for leaf in sorted(set(mine) | set(other)) if mine.get(leaf) != other.get(leaf)]
    if differences:
      raise ValueError(f'cannot graft {path or "the whole tree"!r} from {source_name}; these '
                       f'parameters differ:\n' + '\n'.join(differences))
    result = _replace(result, _keys(path), theirs)
  return result


def _replace(tree: Any, keys: list[str], value: Any) -> Any:
  if not keys:
    return value
  return {**tree, keys[0]: _replace(tree[keys[0]], keys[1:], value)}


def freeze_labels(params: Any, paths: tuple[str, ...]) -> Any:
  """'frozen' for every leaf under one of `paths`, 'trained' elsewhere (for optax.multi_transform).

  Raises:
    ValueError: a path names no parameters.
  """
  for path in paths:
    subtree(params, path, side='optimizer.freeze: the parameters')
  prefixes = [tuple(_keys(path)) for path in paths]

  def label(key_path, _):
    keys = tuple(_key_name(entry) for entry in key_path)
    frozen = any(keys[:len(prefix)] == prefix for prefix in prefixes)
    return 'frozen' if frozen else 'trained'
  return jax.tree_util.tree_map_with_path(label, params)
