"""The optimizers `--optimizer` names, Keras' own but for Adam's update, done in one op per variable.

Keras' Adam updates each variable with about ten elementwise TensorFlow ops (m, v, their square
root, the division, the step), each a pass over the variable's memory: on the 3.2 million
parameters of a 2x512 LSTM language model that is 9.6 ms of every step, 5.0 ms with TensorFlow's
`ResourceApplyAdam`, which does the same arithmetic in one pass over the variable, m and v (the
MNIST-row step, whose seven small variables cost mostly the ops' dispatch, is 0.2-0.3 ms faster).
Where every gradient is dense, the compiled kernels' `CharseqAdam` goes further: one op clips by the
global norm and updates every variable (the MNIST-row step's optimizer part, clipping included,
0.91-1.17 ms instead of 1.30-1.37). The optimizer's variables, names and checkpoints are Keras' Adam's.

>>> import numpy as np
>>> variable = keras.Variable(np.ones(3, np.float32))
>>> optimizer = Adam(learning_rate=0.1)
>>> optimizer.apply([tf.constant([1.0, -1.0, 0.0])], [variable])
>>> [round(float(w), 4) for w in variable.numpy()]
[0.9, 1.1, 1.0]
"""

from __future__ import annotations

import keras
import tensorflow as tf

from charseq.settings import OPTIMIZERS as NAMES


class Adam(keras.optimizers.Adam):
    """keras.optimizers.Adam (the same formula: Keras' epsilon, added to the square root of v),
    each variable's update one `ResourceApplyAdam`. Keras' own update where that would not give
    the same result or cannot run: an embedding's gradient rows (IndexedSlices: Keras squares each
    row of a repeated token on its own, where one op would square their sum), AMSGrad, and under
    a tf.distribute strategy, whose variables are per-replica containers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fused = not self.amsgrad and not tf.distribute.has_strategy()

    def _backend_apply_gradients(self, grads, trainable_variables):
        ops = self._one_op_for(grads, trainable_variables)
        if ops is None:
            return super()._backend_apply_gradients(grads, trainable_variables)
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        slots = [self._get_variable_index(v) for v in trainable_variables]
        ops.charseq_adam(vars=[v.handle for v in variables], ms=[self._momentums[i].value.handle for i in slots],
                         vs=[self._velocities[i].value.handle for i in slots], grads=list(grads),
                         clip_norm=tf.constant(self.global_clipnorm or 0.0, tf.float32),
                         **self._scalars(self.learning_rate, tf.float32))

    def _scalars(self, learning_rate, dtype):
        """This step's scalars of Adam's update, named as ResourceApplyAdam and CharseqAdam take them."""
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        return dict(lr=tf.cast(learning_rate, dtype), beta1_power=tf.pow(beta_1, step),
                    beta2_power=tf.pow(beta_2, step), beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype))

    def _one_op_for(self, grads, variables):
        """The kernels' op library where one `CharseqAdam` can clip and update all of `variables`:
        dense float32 gradients, Adam's own update and at most global-norm clipping (no moving
        average, accumulation or weight decay); else None, and Keras' apply runs."""
        if not self._fused or self.use_ema or self.gradient_accumulation_steps or self.weight_decay \
                or self.clipnorm or self.clipvalue:
            return None
        if not all(isinstance(g, tf.Tensor) and g.dtype == tf.float32 for g in grads) or \
                not all(v.dtype == "float32" for v in variables):
            return None
        from charseq import kernels

        return kernels.load()

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused or isinstance(gradient, tf.IndexedSlices) or not isinstance(variable, tf.Variable):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index].value, self._velocities[index].value
        tf.raw_ops.ResourceApplyAdam(var=variable.handle, m=m.handle, v=v.handle,
                                     grad=tf.cast(gradient, variable.dtype),
                                     **self._scalars(learning_rate, variable.dtype))


OPTIMIZERS = dict(zip(NAMES, (Adam, keras.optimizers.RMSprop, keras.optimizers.SGD, keras.optimizers.Adagrad)))
