"""A resume refused for its shapes exits quietly: one error, no orbax or TensorStore noise."""

import os
import subprocess
import sys
import textwrap

# Saves a state of 8 layers, then restores it with the first layer's bias narrower, in a fresh
# process. The refusal must come before orbax starts reading: its own refusal comes while the other
# arrays' TensorStore reads are in flight, which then find its event loop closed and print a
# traceback each, some at exit (with larger arrays, on a busy machine). The script reports a
# restore that orbax started, so the test does not depend on that race.
_SCRIPT = textwrap.dedent('''
    import sys
    import jax
    import jax.numpy as jnp
    import optax
    from glimpse_jax.train.checkpoint import Checkpointer
    from glimpse_jax.train.state import TrainState

    def state(first):
      params = {f'layer{i}': {'kernel': jnp.ones((64, 64)) * i,
                              'bias': jnp.zeros(first if i == 0 else 64)} for i in range(8)}
      return TrainState.create(apply_fn=None, params=params, tx=optax.adam(1e-3))

    workdir = sys.argv[1]
    checkpointer = Checkpointer(workdir, keep=1)
    checkpointer.save(state(64), 1, {})
    checkpointer.close()
    checkpointer = Checkpointer(workdir, keep=1)
    orbax_restore = checkpointer._manager.restore
    def restore(*args, **kwargs):
      print('orbax restore started', file=sys.stderr)
      return orbax_restore(*args, **kwargs)
    checkpointer._manager.restore = restore
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device),
                            jax.eval_shape(lambda: state(32)))
    try:
      checkpointer.restore(abstract)
    except ValueError as error:
      print('refused:', str(error)[:200], file=sys.stderr)
    else:
      print('restored another shape', file=sys.stderr)
    finally:
      checkpointer.close()
''')


def test_a_resume_refused_for_its_shapes_leaves_no_noise_at_exit(tmp_path):
  result = subprocess.run([sys.executable, '-c', _SCRIPT, str(tmp_path / 'run')],
                          capture_output=True, text=True, check=False, timeout=120,
                          env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert result.returncode == 0, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines and lines[-1].startswith('refused: checkpoint 1 holds other shapes: '), \
      result.stderr[-3000:]
  assert 'layer0/bias: (32,) requested, (64,) stored' in lines[-1]
  assert 'orbax restore started' not in result.stderr
  assert 'Exception ignored' not in result.stderr and 'Traceback' not in result.stderr, \
      result.stderr[-3000:]
  assert len(lines) <= 3, result.stderr[-3000:]
