"""The layers in ops.py: values and gradients against TensorFlow's own ops, for the reformulated ones."""
import numpy as np
import pytest

import ops
from tf_compat import tf


@pytest.fixture(autouse=True)
def fresh_graph():
    tf.reset_default_graph()
    yield
    tf.reset_default_graph()


def run(fetches):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(fetches)


@pytest.mark.parametrize('leak', [0.2, 0.3])
def test_lrelu_value_and_gradient(leak):
    values = np.array([[-2.0, -0.5, 0.25, 3.0]], np.float32)
    x = tf.constant(values)
    y = ops.lrelu(x, leak)
    upstream = tf.constant([[1.0, 2.0, 3.0, 4.0]])
    (grad,) = tf.gradients(y, [x], upstream)
    y_value, grad_value = run([y, grad])
    np.testing.assert_allclose(y_value, np.where(values > 0, values, leak * values), rtol=1e-6)
    np.testing.assert_allclose(grad_value, np.array([[leak, 2 * leak, 3.0, 4.0]]), rtol=1e-6)


def test_lrelu_gradient_override_leaves_other_maximum_ops_alone():
    a, b = tf.constant([1.0, -1.0]), tf.constant([0.0, 0.0])
    ops.lrelu(a)
    (grad_b,) = tf.gradients(tf.maximum(a, b), [b])
    np.testing.assert_allclose(run(grad_b), [0.0, 1.0])
