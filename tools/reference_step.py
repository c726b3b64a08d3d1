"""The reference implementation's training step rebuilt as it ran: tools/benchmark.py's same-run baseline.

The reference is carpedm20/DCGAN-tensorflow (model.py, ops.py, utils.py there); this file rebuilds only what
decides its speed, in this project's own code, so that the benchmark can time it beside ours on the same
machine in the same run:
- networks as the reference built them: labels tiled and concatenated onto feature maps, native transposed
  convolutions, leaky ReLU as tf.maximum, batch norm that updates its moving averages inside every
  training-mode pass (its updates_collections=None);
- one sess.run per update (D, then G twice with the same z), each fed from numpy through feed_dict,
  then three more forward passes only to read the losses;
- images decoded per batch on the training thread: each JPEG read, centre-cropped, resized (bilinear) and
  scaled in numpy before the step; MNIST sliced from float arrays held in memory.
The reference's per-step summaries (histograms, an image summary written to an event file) are left out:
they only make it slower, so the baseline errs on the fast side.

    python tools/benchmark.py --configs dcgan64_g2_reference mnist_reference    # time it alone
"""
import collections

import numpy as np

RefGraph = collections.namedtuple('RefGraph', 'images labels z d_optim g_optim d_loss_real d_loss_fake g_loss')


# ---- the reference's layers --------------------------------------------------------------------------------
def _linear(tf, x, units, name):
    with tf.variable_scope(name):
        matrix = tf.get_variable('Matrix', [x.get_shape()[1], units], tf.float32,
                                 tf.random_normal_initializer(stddev=0.02))
        bias = tf.get_variable('bias', [units], initializer=tf.zeros_initializer())
        return tf.matmul(x, matrix) + bias


def _conv(tf, x, channels, name):
    with tf.variable_scope(name):
        w = tf.get_variable('w', [5, 5, x.get_shape()[-1], channels],
                            initializer=tf.truncated_normal_initializer(stddev=0.02))
        biases = tf.get_variable('biases', [channels], initializer=tf.zeros_initializer())
        return tf.nn.bias_add(tf.nn.conv2d(x, w, [1, 2, 2, 1], 'SAME'), biases)


def _deconv(tf, x, output_shape, name):
    with tf.variable_scope(name):
        w = tf.get_variable('w', [5, 5, output_shape[-1], x.get_shape()[-1]],
                            initializer=tf.random_normal_initializer(stddev=0.02))
        biases = tf.get_variable('biases', [output_shape[-1]], initializer=tf.zeros_initializer())
        return tf.nn.bias_add(tf.nn.conv2d_transpose(x, w, output_shape, [1, 2, 2, 1]), biases)


def _batch_norm(tf, x, name):
    """Training-mode batch norm (fused, as the reference's layer picked for 2-D and 4-D input) whose moving averages
    (decay 0.9) are updated by every pass through it."""
    with tf.variable_scope(name):
        channels = x.get_shape()[-1]
        beta = tf.get_variable('beta', [channels], initializer=tf.zeros_initializer())
        gamma = tf.get_variable('gamma', [channels], initializer=tf.ones_initializer())
        moving_mean = tf.get_variable('moving_mean', [channels], initializer=tf.zeros_initializer(),
                                      trainable=False)
        moving_variance = tf.get_variable('moving_variance', [channels], initializer=tf.ones_initializer(),
                                          trainable=False)
        as_4d = x if x.get_shape().ndims == 4 else tf.reshape(x, [-1, 1, 1, channels])
        y, mean, variance = tf.nn.fused_batch_norm(as_4d, gamma, beta, epsilon=1e-5, is_training=True)
        updates = [tf.assign_sub(moving_mean, (moving_mean - mean) * 0.1),
                   tf.assign_sub(moving_variance, (moving_variance - variance) * 0.1)]
        with tf.control_dependencies(updates):
            return tf.reshape(y, x.get_shape())


def _lrelu(tf, x):
    return tf.maximum(x, 0.2 * x)


def _tile_labels(tf, x, labels):
    """[x, labels tiled over x's height and width] along channels (the reference's conv_cond_concat)."""
    n, h, w, _ = x.get_shape().as_list()
    return tf.concat([x, tf.reshape(labels, [n, 1, 1, -1]) * tf.ones([n, h, w, labels.get_shape()[-1]])], 3)


# ---- the reference's networks ------------------------------------------------------------------------------
def generator(tf, z, labels, size, channels):
    n = z.get_shape()[0]
    with tf.variable_scope('generator'):
        if labels is None:  # 64x64: z -> 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3
            s = [size // 16, size // 8, size // 4, size // 2, size]
            h = tf.reshape(_linear(tf, z, 512 * s[0] * s[0], 'g_h0_lin'), [n, s[0], s[0], 512])
            h = tf.nn.relu(_batch_norm(tf, h, 'g_bn0'))
            for i, depth in enumerate((256, 128, 64), 1):
                h = tf.nn.relu(_batch_norm(tf, _deconv(tf, h, [n, s[i], s[i], depth], 'g_h%d' % i), 'g_bn%d' % i))
            return tf.nn.tanh(_deconv(tf, h, [n, size, size, channels], 'g_h4'))
        # conditional MNIST: [z, y] -> 1024 -> 7x7x128 -> 14x14x128 -> 28x28x1, y joined at every layer
        h = tf.nn.relu(_batch_norm(tf, _linear(tf, tf.concat([z, labels], 1), 1024, 'g_h0_lin'), 'g_bn0'))
        h = tf.nn.relu(_batch_norm(tf, _linear(tf, tf.concat([h, labels], 1), 128 * 7 * 7, 'g_h1_lin'), 'g_bn1'))
        h = _tile_labels(tf, tf.reshape(h, [n, 7, 7, 128]), labels)
        h = _tile_labels(tf, tf.nn.relu(_batch_norm(tf, _deconv(tf, h, [n, 14, 14, 128], 'g_h2'), 'g_bn2')), labels)
        return tf.nn.sigmoid(_deconv(tf, h, [n, size, size, channels], 'g_h3'))


def discriminator(tf, images, labels, reuse):
    n = images.get_shape()[0]
    with tf.variable_scope('discriminator', reuse=reuse):
        if labels is None:  # 64x64x3 -> 32x32x64 -> 16x16x128 -> 8x8x256 -> 4x4x512 -> logit
            h = _lrelu(tf, _conv(tf, images, 64, 'd_h0_conv'))
            for i, depth in enumerate((128, 256, 512), 1):
                h = _lrelu(tf, _batch_norm(tf, _conv(tf, h, depth, 'd_h%d_conv' % i), 'd_bn%d' % i))
            return _linear(tf, tf.reshape(h, [n, -1]), 1, 'd_h4_lin')
        h = _tile_labels(tf, _lrelu(tf, _conv(tf, _tile_labels(tf, images, labels), 11, 'd_h0_conv')), labels)
        h = _lrelu(tf, _batch_norm(tf, _conv(tf, h, 74, 'd_h1_conv'), 'd_bn1'))
        h = _lrelu(tf, _batch_norm(tf, _linear(tf, tf.concat([tf.reshape(h, [n, -1]), labels], 1), 1024,
                                               'd_h2_lin'), 'd_bn2'))
        return _linear(tf, tf.concat([h, labels], 1), 1, 'd_h3_lin')


def build(tf, size, channels, y_dim, batch, z_dim=100):
    """The reference's placeholders, losses and two Adam optimisers (learning rate 0.0002, beta1 0.5)."""
    images = tf.placeholder(tf.float32, [batch, size, size, channels], 'real_images')
    labels = tf.placeholder(tf.float32, [batch, y_dim], 'y') if y_dim else None
    z = tf.placeholder(tf.float32, [batch, z_dim], 'z')
    fake = generator(tf, z, labels, size, channels)
    logits_real = discriminator(tf, images, labels, reuse=False)
    logits_fake = discriminator(tf, fake, labels, reuse=True)

    def cross_entropy(logits, target):
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(logits=logits, labels=target(logits)))
    d_loss_real = cross_entropy(logits_real, tf.ones_like)
    d_loss_fake = cross_entropy(logits_fake, tf.zeros_like)
    g_loss = cross_entropy(logits_fake, tf.ones_like)
    d_optim = tf.train.AdamOptimizer(0.0002, beta1=0.5).minimize(
        d_loss_real + d_loss_fake, var_list=tf.trainable_variables('discriminator'))
    g_optim = tf.train.AdamOptimizer(0.0002, beta1=0.5).minimize(
        g_loss, var_list=tf.trainable_variables('generator'))
    return RefGraph(images, labels, z, d_optim, g_optim, d_loss_real, d_loss_fake, g_loss)


# ---- the reference's input: decoded per batch on the training thread ---------------------------------------
def jpeg_batches(paths, batch, crop=108, size=64, seed=0):
    """Yields float32 batches in [-1, 1]: per file, read, centre crop, bilinear resize, scale; reshuffled
    every epoch, the last partial batch dropped."""
    from PIL import Image
    rng = np.random.RandomState(seed)
    while True:
        order = rng.permutation(len(paths))
        for start in range(0, len(paths) - batch + 1, batch):
            images = []
            for index in order[start:start + batch]:
                with Image.open(paths[index]) as image:
                    pixels = np.asarray(image.convert('RGB'), np.float64)
                top, left = (pixels.shape[0] - crop) // 2, (pixels.shape[1] - crop) // 2
                square = Image.fromarray(pixels[top:top + crop, left:left + crop].astype(np.uint8))
                images.append(np.asarray(square.resize((size, size), Image.BILINEAR)) / 127.5 - 1.0)
            yield np.asarray(images, np.float32), None


def array_batches(images, labels, batch):
    """Yields (images, one-hot labels) slices of arrays held in memory, in order, as the reference did for MNIST."""
    while True:
        for start in range(0, len(images) - batch + 1, batch):
            yield images[start:start + batch], labels[start:start + batch]


def train_step(sess, graph, batches, rng, g_steps=2):
    """One step of the reference: D update, g_steps G updates with the same z, three passes to read the losses."""
    images, labels = next(batches)
    z = rng.uniform(-1, 1, graph.z.get_shape().as_list()).astype(np.float32)

    def feed(*pairs):
        return dict(pairs + (((graph.labels, labels),) if graph.labels is not None else ()))
    sess.run(graph.d_optim, feed((graph.images, images), (graph.z, z)))
    for _ in range(g_steps):
        sess.run(graph.g_optim, feed((graph.z, z)))
    d_loss_fake = sess.run(graph.d_loss_fake, feed((graph.z, z)))
    d_loss_real = sess.run(graph.d_loss_real, feed((graph.images, images)))
    g_loss = sess.run(graph.g_loss, feed((graph.z, z)))
    return d_loss_real + d_loss_fake, g_loss

