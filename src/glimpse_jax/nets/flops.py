"""Multiply-adds of a JAX function, counted from its jaxpr: the matrix products and convolutions.

Elementwise work (activations, pooling, softmax, normalisation) is left out: it is a few percent
of a network's arithmetic and its cost depends on the backend. A FLOP count is twice the result.
"""

import math
from typing import Any, Callable

import jax
from jax.extend import core


def multiply_adds(fun: Callable[..., Any], *args: Any) -> int:
  """Multiply-adds of `dot_general` and `conv_general_dilated` in one call `fun(*args)`.

  Args:
    fun: a JAX-traceable function.
    *args: its arguments, arrays or `jax.ShapeDtypeStruct`s (only shapes matter).

  Raises:
    ValueError: `fun` holds a `while_loop`, whose trip count its jaxpr does not give.
  """
  return _jaxpr_multiply_adds(jax.make_jaxpr(fun)(*args).jaxpr)


def _jaxpr_multiply_adds(jaxpr: core.Jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'dot_general':
      lhs = eqn.invars[0].aval.shape
      (lhs_contract, _), _ = eqn.params['dimension_numbers']
      total += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
    elif name == 'conv_general_dilated':
      kernel = eqn.invars[1].aval.shape
      out_features = kernel[eqn.params['dimension_numbers'].rhs_spec[0]]
      # Each output element sums (input features per group) x (kernel window) products.
      total += math.prod(eqn.outvars[0].aval.shape) * math.prod(kernel) // out_features
    elif name == 'while':
      raise ValueError(
          'multiply_adds cannot count a while_loop (its trip count is not in the jaxpr)')
    elif name == 'cond':
      total += max(_jaxpr_multiply_adds(b.jaxpr) for b in eqn.params['branches'])
    else:
      repeats = eqn.params['length'] if name == 'scan' else 1
      for sub in _sub_jaxprs(eqn.params):
        total += repeats * _jaxpr_multiply_adds(sub)
  return total


def _sub_jaxprs(params: dict[str, Any]) -> list[core.Jaxpr]:
  """The jaxprs an equation calls (pjit, custom_jvp / custom_vjp, remat, scan bodies)."""
  found = []
  for value in params.values():
    if isinstance(value, core.ClosedJaxpr):
      found.append(value.jaxpr)
    elif isinstance(value, core.Jaxpr):
      found.append(value)
  return found
