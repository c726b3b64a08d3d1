"""The TensorFlow 1 API on either runtime: TF 1.15 as is, TF 2.x through tensorflow.compat.v1 in graph mode."""
import tensorflow
import tensorflow.compat.v1 as tf

tf.get_logger().setLevel('ERROR')  # deprecation notices of the v1 API are not news to the user
tf.disable_v2_behavior()  # graph mode, sessions and placeholders on TF 2.x; a no-op where it is already so

tf2 = tensorflow.compat.v2  # the few v2-only ops used in graph mode (antialiased resize), on both runtimes
