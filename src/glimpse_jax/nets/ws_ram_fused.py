"""The WS-RAM rollout's recurrence with batched weight gradients (see `ws_ram.WakeSleepRAM`).

Autodiff of the scanned `WSRAMStep` takes every layer's weight gradient inside the reverse scan,
small [D, K*B] x [K*B, D] products per glimpse. Because the sampled actions (location and scale)
carry no gradient, the glimpse a rollout reads at step t is a constant of the parameters' path
through it, and only the two recurrent layers chain the glimpses: the reverse scan here keeps
only their recurrence (dz_t @ W^T), and every weight gradient (glimpse network, both layers) is one
[D, T*K*B] x [T*K*B, D] product after it. The policies are applied outside, by autodiff, to the
top-layer states this returns (one batched pass over every glimpse), so their gradients and
the log-probabilities follow the module's. Values and gradients equal those of `WSRAMStep`
under `nn.scan` (tested). Every array is time-major, [T, K, B, ...].
"""

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from glimpse_jax.nets.actions import MAX_LOG_STD, MIN_LOG_STD, ActionDist

Params = Any


@dataclasses.dataclass(frozen=True)
class RolloutSpec:
  """Static parts of the rollout: the retina read, the policy heads (`ActionHead`'s), the proposal."""

  read: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # [B,H,W,C], [K,B,2], [K,B] -> [K,B,P]
  num_scales: int
  location_std: float
  learn_std: bool
  inference_features: int
  proposal: str  # 'prior' or 'q'
  temperature: float
  policy_gradient_to_bottom: bool = True  # False: the top layer reads stop_gradient(bottom)

  def policy(self, step_params: Params, top: jax.Array,
             mean_offset: jax.Array | None = None) -> ActionDist:
    """The prior policy p(a_t | a_<t, x) on top-layer states [..., D2]."""
    return self._head(step_params['policy'], top, mean_offset)

  def inference(self, step_params: Params, top: jax.Array, label_code: jax.Array,
                mean_offset: jax.Array | None = None) -> ActionDist:
    """q(a_t | a_<t, x, y) on top-layer states [..., D2] (their gradient stopped), labels [..., C]."""
    labels = jnp.broadcast_to(label_code, (*top.shape[:-1], label_code.shape[-1]))
    h = jnp.concatenate([jax.lax.stop_gradient(top), labels], -1)
    return self._head(step_params['inference'], h, mean_offset)

  def _head(self, p: Params, h: jax.Array, mean_offset: jax.Array | None) -> ActionDist:
    """`ActionHead` on its parameters `p` (`mean_offset` as there), its output layers as one
    matrix product."""
    if 'hidden' in p:
      h = jax.nn.relu(_dense(p['hidden'], h))
    names = ('mean', *(('scale',) if self.num_scales > 1 else ()),
             *(('log_std',) if self.learn_std else ()))
    out = _dense({k: jnp.concatenate([p[n][k] for n in names], -1) for k in ('kernel', 'bias')},
                 h)  # [..., 2 + S + 2]
    pre_mean = out[..., :2] if mean_offset is None else out[..., :2] + mean_offset
    mean = jnp.tanh(pre_mean)
    log_std = jnp.full_like(mean, math.log(self.location_std))
    if self.learn_std:
      log_std = jnp.clip(log_std + out[..., -2:], MIN_LOG_STD, MAX_LOG_STD)
    if self.num_scales > 1:
      logits = out[..., 2:2 + self.num_scales]
    else:
      logits = jnp.zeros((*h.shape[:-1], 1), h.dtype)
    return ActionDist(mean, log_std, logits, pre_mean)


def _dense(p: Params, x: jax.Array) -> jax.Array:
  return x @ p['kernel'] + p['bias']


def _forward(spec: RolloutSpec, p: Params, images: jax.Array, top0: jax.Array, noise,
             label_code: jax.Array | None, mean_offsets: jax.Array | None):
  num_scales = spec.num_scales

  def step(carry, xs):
    noise_t, offset_t = xs
    bottom, top = carry  # [K, B, D1], [K, B, D2]
    if spec.proposal == 'q':
      acting = spec.inference(p, top, label_code, offset_t)
    else:
      acting = spec.policy(p, top, offset_t)
    location, scale = acting.temper(spec.temperature).sample(noise_t.location, noise_t.choice)
    seen = jnp.clip(location, -1.0, 1.0)
    where = jnp.concatenate([seen, jax.nn.one_hot(scale, num_scales, dtype=seen.dtype)], -1)
    patch = spec.read(images, seen, scale)  # [K, B, P]
    h_both = jnp.concatenate([jax.nn.relu(_dense(p['glimpse']['what'], patch)),
                              jax.nn.relu(_dense(p['glimpse']['where'], where))], -1)
    g = jax.nn.relu(_dense(p['glimpse']['combine'], h_both))
    bottom = jax.nn.relu(_dense(p['bottom']['recurrent'], jnp.concatenate([g, bottom], -1)))
    top = jax.nn.relu(_dense(p['top']['recurrent'], jnp.concatenate([bottom, top], -1)))
    return (bottom, top), (bottom, top, location, scale, patch, where, h_both, g)

  features = p['bottom']['recurrent']['bias'].shape[0]
  bottom0 = jnp.zeros((*top0.shape[:-1], features), top0.dtype)
  _, outs = jax.lax.scan(step, (bottom0, top0), (noise, mean_offsets))
  return outs  # bottoms, tops, locations, scales, patches, wheres, h_boths, gs: [T, K, B, ...]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def rollout(spec: RolloutSpec, step_params: Params, images: jax.Array, top0: jax.Array, noise,
            label_code: jax.Array | None, mean_offsets: jax.Array | None = None):
  """Runs T glimpses of K rollouts from the top layer's initial state top0 [K, B, D2].

  Args:
    noise: `ActionNoise` of time-major [T, K, B, ...] arrays.
    label_code: [B, C] one-hot labels (q proposes) or None.
    mean_offsets: [T, 1, B, 2] added to the acting policy's location means before their tanh,
      or None.

  Returns:
    (bottom states [T, K, B, D1], top states [T, K, B, D2], locations [T, K, B, 2] unclipped,
    scales [T, K, B] int32); the actions carry no gradient.
  """
  bottoms, tops, locations, scales, *_ = _forward(spec, step_params, images, top0, noise,
                                                  label_code, mean_offsets)
  return bottoms, tops, locations, scales


def _rollout_fwd(spec, step_params, images, top0, noise, label_code, mean_offsets=None):
  bottoms, tops, locations, scales, patches, wheres, h_boths, gs = _forward(
      spec, step_params, images, top0, noise, label_code, mean_offsets)
  residuals = (step_params, top0, bottoms, tops, patches, wheres, h_boths, gs)
  return (bottoms, tops, locations, scales), residuals


def _rollout_bwd(spec, residuals, cotangents):
  p, top0, bottoms, tops, patches, wheres, h_boths, gs = residuals
  d_bottoms, d_tops, _, _ = cotangents  # the actions' cotangents are dropped
  w_bottom = p['bottom']['recurrent']['kernel']  # [G + D1, D1]
  w_top = p['top']['recurrent']['kernel']  # [D1 + D2, D2]
  glimpse_features, bottom_features = gs.shape[-1], bottoms.shape[-1]
  w_bottom_g_t, w_bottom_h_t = w_bottom[:glimpse_features].T, w_bottom[glimpse_features:].T
  w_top_t = w_top.T  # [D2, D1 + D2]

  def reverse_step(carry, xs):
    d_bottom_next, d_top_next = carry  # through the recurrence from step t + 1
    d_bottom, d_top, bottom, top = xs
    dz_top = (d_top + d_top_next) * (top > 0)  # [K, B, D2]
    d_top_in = dz_top @ w_top_t  # [K, B, D1 + D2]
    from_top = d_top_in[..., :bottom_features] if spec.policy_gradient_to_bottom else 0.0
    dz_bottom = (d_bottom + d_bottom_next + from_top) * (bottom > 0)
    return (dz_bottom @ w_bottom_h_t, d_top_in[..., bottom_features:]), (dz_bottom, dz_top)

  zeros_bottom = jnp.zeros_like(bottoms[0])
  (_, d_top0), (dz_bottom, dz_top) = jax.lax.scan(
      reverse_step, (zeros_bottom, jnp.zeros_like(top0)), (d_bottoms, d_tops, bottoms, tops),
      reverse=True)  # dz: [T, K, B, D]

  rows = lambda a: a.reshape(-1, a.shape[-1])  # [T * K * B, ...]
  # Each layer's input is [x_t, h_{t-1}]: its kernel's gradient is two products, x and h's,
  # the previous states' leaving out step 0 (the bottom starts at zero).
  top_h = rows(tops[:-1]).T @ rows(dz_top[1:]) + rows(top0).T @ rows(dz_top[0])
  bottom_h = rows(bottoms[:-1]).T @ rows(dz_bottom[1:])
  dz_bottom, dz_top, gs, h_boths = rows(dz_bottom), rows(dz_top), rows(gs), rows(h_boths)
  grads = jax.tree.map(jnp.zeros_like, p)
  grads['top']['recurrent'] = {
      'kernel': jnp.concatenate([rows(bottoms).T @ dz_top, top_h], 0), 'bias': dz_top.sum(0)}
  grads['bottom']['recurrent'] = {
      'kernel': jnp.concatenate([gs.T @ dz_bottom, bottom_h], 0), 'bias': dz_bottom.sum(0)}
  d_g = (dz_bottom @ w_bottom_g_t) * (gs > 0)
  grads['glimpse']['combine'] = {'kernel': h_boths.T @ d_g, 'bias': d_g.sum(0)}
  d_both = (d_g @ p['glimpse']['combine']['kernel'].T) * (h_boths > 0)
  what_features = p['glimpse']['what']['bias'].shape[0]
  d_what, d_where = d_both[:, :what_features], d_both[:, what_features:]
  grads['glimpse']['what'] = {'kernel': rows(patches).T @ d_what, 'bias': d_what.sum(0)}
  grads['glimpse']['where'] = {'kernel': rows(wheres).T @ d_where, 'bias': d_where.sum(0)}
  return grads, None, d_top0, None, None, None


rollout.defvjp(_rollout_fwd, _rollout_bwd)
