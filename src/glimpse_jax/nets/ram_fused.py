"""The RAM rollout with a ReLU RNN core, with batched weight gradients.

Autodiff of a scanned RAM step computes each weight gradient inside the reverse scan, one small
[D, B] x [B, D] product per glimpse. Because the sampled locations carry no gradient, every layer
except the recurrence can instead take its weight gradient in one [D, T*B] x [T*B, D] product after
the scan, and the reverse scan keeps only dz_t @ W_h^T. Values and gradients equal those of
`ram.RAMStep` under `nn.scan` (tested), for the parameter tree that module creates with the ReLU
RNN core and the 'linear' locator, without teacher forcing or a step mask: the model refuses
`fused=True` for any other structure.
"""

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from glimpse_jax.nets import policies

Params = Any


@dataclasses.dataclass(frozen=True)
class RolloutSpec:
  """Static parts of the rollout: the batched retina read, the policy std, random locations and
  the mean's activation (`policies.MEAN_ACTIVATIONS`)."""

  read: Callable[[jax.Array, jax.Array], jax.Array]  # [B, H, W, C], [B, 2] -> [B, P]
  location_std: float
  random_locations: bool
  mean_activation: str = 'tanh'


def _dense(p: Params, x: jax.Array) -> jax.Array:
  return x @ p['kernel'] + p['bias']


def location_mean(step_params: Params, h: jax.Array, activation: str = 'tanh') -> jax.Array:
  """The policy mean activation(Linear(h)) for core states h [..., D] -> [..., 2]."""
  return policies.location_mean(_dense(step_params['location']['mean'], h), activation)


def _forward(spec: RolloutSpec, p: Params, images: jax.Array, noise: jax.Array):
  w_rec = p['core']['recurrent']

  def step(h, noise_t):
    if spec.random_locations:
      location = noise_t
    else:
      location = location_mean(p, h, spec.mean_activation) + spec.location_std * noise_t
    seen = jnp.clip(location, -1.0, 1.0)
    patch = spec.read(images, seen)  # [B, P]
    h_what = jax.nn.relu(_dense(p['glimpse']['what'], patch))
    h_where = jax.nn.relu(_dense(p['glimpse']['where'], seen))
    h_both = jnp.concatenate([h_what, h_where], -1)
    g = jax.nn.relu(_dense(p['glimpse']['combine'], h_both))
    h_new = jax.nn.relu(_dense(w_rec, jnp.concatenate([g, h], -1)))
    return h_new, (h_new, location, patch, seen, h_both, g)

  batch = images.shape[0]
  h0 = jnp.zeros((batch, w_rec['bias'].shape[0]), images.dtype)
  _, outs = jax.lax.scan(step, h0, noise)
  return outs  # hidden [T,B,D], location [T,B,2], patch [T,B,P], seen [T,B,2], h_both, g


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def rollout(spec: RolloutSpec, step_params: Params, images: jax.Array, noise: jax.Array):
  """Runs T glimpses: returns (hidden [T, B, D], locations [T, B, 2]); locations carry no gradient."""
  hidden, location, *_ = _forward(spec, step_params, images, noise)
  return hidden, location


def _rollout_fwd(spec, step_params, images, noise):
  hidden, location, patch, seen, h_both, g = _forward(spec, step_params, images, noise)
  return (hidden, location), (step_params, hidden, patch, seen, h_both, g)


def _rollout_bwd(spec, residuals, cotangents):
  del spec
  p, hidden, patch, seen, h_both, g = residuals
  d_hidden, _ = cotangents  # the locations are actions: their cotangent is dropped
  num_steps, batch, features = hidden.shape
  w_rec = p['core']['recurrent']['kernel']  # [G + D, D]
  w_hh = w_rec[-features:]

  def reverse_step(dh_next, xs):
    dh_t, h_t = xs
    dz = (dh_t + dh_next) * (h_t > 0)
    return dz @ w_hh.T, dz

  zeros = jnp.zeros((batch, features), hidden.dtype)
  _, dz = jax.lax.scan(reverse_step, zeros, (d_hidden, hidden), reverse=True)  # [T, B, D]

  flat = lambda a: a.reshape(num_steps * batch, -1)
  h_prev = jnp.concatenate([zeros[None], hidden[:-1]], 0)
  dz, g, h_both = flat(dz), flat(g), flat(h_both)
  grads = jax.tree.map(jnp.zeros_like, p)
  grads['core']['recurrent'] = {
      'kernel': jnp.concatenate([g, flat(h_prev)], -1).T @ dz, 'bias': dz.sum(0)}
  dg = (dz @ w_rec[:-features].T) * (g > 0)
  grads['glimpse']['combine'] = {'kernel': h_both.T @ dg, 'bias': dg.sum(0)}
  d_both = (dg @ p['glimpse']['combine']['kernel'].T) * (h_both > 0)
  what = p['glimpse']['what']['bias'].shape[0]
  d_what, d_where = d_both[:, :what], d_both[:, what:]
  grads['glimpse']['what'] = {'kernel': flat(patch).T @ d_what, 'bias': d_what.sum(0)}
  grads['glimpse']['where'] = {'kernel': flat(seen).T @ d_where, 'bias': d_where.sum(0)}
  return grads, None, None


rollout.defvjp(_rollout_fwd, _rollout_bwd)
