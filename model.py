"""DCGAN networks (Radford et al. 2015) and the training graph, built in steps: networks, losses, train ops.

The layers are ops.py's: TensorFlow's own ops, or on a CPU cpu_kernels' equal forms (ops.set_impl, set by the
device code); the variables, and so the checkpoints, are the same either way.
"""
import collections
import math

from tf_compat import tf

from ops import batch_norm, conv2d, deconv2d, linear, lrelu

GENERATOR_SCOPE = 'generator'
DISCRIMINATOR_SCOPE = 'discriminator'
SAMPLER_SCOPE = 'sampler'
SAMPLER_OUTPUT = SAMPLER_SCOPE + '/images'  # output node of the frozen sampler graph (--freeze)

# Everything that shapes the networks; batch size is not part of it (the graph takes any batch).
NetConfig = collections.namedtuple('NetConfig', [
    'output_height', 'output_width',  # generated image size
    'c_dim',  # image channels: 1 grayscale, 3 RGB
    'z_dim',  # latent size
    'y_dim',  # label size: 10 for the conditional MNIST networks, 0 for the unconditional ones
    'gf_dim', 'df_dim',  # filters of the first generator / discriminator conv layer (64 in the paper)
    'gfc_dim', 'dfc_dim',  # fully connected widths of the conditional networks (1024)
])


def net_config(output_height, output_width, c_dim, z_dim=100, y_dim=0, gf_dim=64, df_dim=64,
               gfc_dim=1024, dfc_dim=1024):
    """NetConfig with the reference's hard-wired widths as defaults."""
    return NetConfig(output_height, output_width, c_dim, z_dim, y_dim, gf_dim, df_dim, gfc_dim, dfc_dim)


def data_range(cfg):
    """Dynamic range of images the networks see: [0, 1] for conditional MNIST (sigmoid), else [-1, 1]."""
    return (0.0, 1.0) if cfg.y_dim else (-1.0, 1.0)


def _halvings(size, times):
    """Spatial sizes after each stride-2 SAME layer: [size, ceil(size/2), ceil(size/4), ...]."""
    sizes = [size]
    for _ in range(times):
        sizes.append(int(math.ceil(sizes[-1] / 2.0)))
    return sizes


def _network_scope(name):
    # Resource variables: each read is an op placed where the variable is used, so a read made under a
    # control dependency sees the value after that update (the fused train step relies on it).
    return tf.variable_scope(name, reuse=tf.AUTO_REUSE, use_resource=True)


def generator(z, y, cfg, training):
    """Maps latents z [N, z_dim] (and one-hot labels y [N, y_dim]) to images [N, H, W, C] in data_range."""
    with _network_scope(GENERATOR_SCOPE):
        if cfg.y_dim:
            return _conditional_generator(z, y, cfg, training)
        hs, ws = _halvings(cfg.output_height, 4), _halvings(cfg.output_width, 4)
        h = linear(z, cfg.gf_dim * 8 * hs[4] * ws[4], 'g_h0_lin')
        h = tf.reshape(h, [-1, hs[4], ws[4], cfg.gf_dim * 8])  # N, 4, 4, 512 at 64x64
        h = tf.nn.relu(batch_norm(h, training, 'g_bn0'))
        for i, multiple in enumerate((4, 2, 1), start=1):  # N, 8, 8, 256 -> N, 16, 16, 128 -> N, 32, 32, 64
            h = deconv2d(h, hs[4 - i], ws[4 - i], cfg.gf_dim * multiple, name='g_h%d' % i)
            h = tf.nn.relu(batch_norm(h, training, 'g_bn%d' % i))
        h = deconv2d(h, hs[0], ws[0], cfg.c_dim, name='g_h4')  # N, 64, 64, 3
        return tf.nn.tanh(h)


def _conditional_generator(z, y, cfg, training):
    hs, ws = _halvings(cfg.output_height, 2), _halvings(cfg.output_width, 2)
    h = tf.concat([z, y], 1)  # N, 110
    h = linear(h, cfg.gfc_dim, 'g_h0_lin')
    h = tf.nn.relu(batch_norm(h, training, 'g_bn0'))  # N, 1024
    h = tf.concat([h, y], 1)  # N, 1034
    h = linear(h, cfg.gf_dim * 2 * hs[2] * ws[2], 'g_h1_lin')  # N, 6272
    h = tf.nn.relu(batch_norm(h, training, 'g_bn1'))
    h = tf.reshape(h, [-1, hs[2], ws[2], cfg.gf_dim * 2])  # N, 7, 7, 128
    # labels=y: the layer sees y appended to every position (conv_cond_concat), N, 7, 7, 138 here
    h = deconv2d(h, hs[1], ws[1], cfg.gf_dim * 2, name='g_h2', labels=y)  # N, 14, 14, 128
    h = tf.nn.relu(batch_norm(h, training, 'g_bn2'))
    h = deconv2d(h, hs[0], ws[0], cfg.c_dim, name='g_h3', labels=y)  # (N, 14, 14, 138 ->) N, 28, 28, 1
    return tf.nn.sigmoid(h)


def discriminator(x, y, cfg, training):
    """Maps images [N, H, W, C] in data_range (and labels y) to real-vs-fake logits [N, 1]."""
    with _network_scope(DISCRIMINATOR_SCOPE):
        if cfg.y_dim:
            return _conditional_discriminator(x, y, cfg, training)
        hs, ws = _halvings(cfg.output_height, 4), _halvings(cfg.output_width, 4)
        h = lrelu(conv2d(x, cfg.df_dim, name='d_h0_conv'))  # no BN here
        for i, multiple in enumerate((2, 4, 8), start=1):  # N, 16, 16, 128 -> N, 8, 8, 256 -> N, 4, 4, 512
            h = conv2d(h, cfg.df_dim * multiple, name='d_h%d_conv' % i)
            h = lrelu(batch_norm(h, training, 'd_bn%d' % i))
        h = tf.reshape(h, [-1, hs[4] * ws[4] * cfg.df_dim * 8])  # N, 8192
        return linear(h, 1, 'd_h4_lin')


def _conditional_discriminator(x, y, cfg, training):
    hs, ws = _halvings(cfg.output_height, 2), _halvings(cfg.output_width, 2)
    # labels=y: each conv sees y appended to every position of its input (conv_cond_concat)
    h = lrelu(conv2d(x, cfg.c_dim + cfg.y_dim, name='d_h0_conv', labels=y))  # (N, 28, 28, 11 ->) N, 14, 14, 11
    h = conv2d(h, cfg.df_dim + cfg.y_dim, name='d_h1_conv', labels=y)  # (N, 14, 14, 21 ->) N, 7, 7, 74
    h = lrelu(batch_norm(h, training, 'd_bn1'))
    h = tf.reshape(h, [-1, hs[2] * ws[2] * (cfg.df_dim + cfg.y_dim)])  # N, 3626
    h = tf.concat([h, y], 1)  # N, 3636
    h = linear(h, cfg.dfc_dim, 'd_h2_lin')
    h = lrelu(batch_norm(h, training, 'd_bn2'))  # N, 1024
    h = tf.concat([h, y], 1)  # N, 1034
    return linear(h, 1, 'd_h3_lin')


def moving_statistics(scope=''):
    """The batch-norm moving averages (ops.batch_norm's moving_mean and moving_variance) of both networks,
    or of the network under scope, with the averaged generator's own."""
    ends = tuple(name + suffix for name in ('/moving_mean', '/moving_variance') for suffix in ('', '/' + EMA_SUFFIX))
    return [v for v in tf.global_variables() if v.op.name.startswith(scope) and v.op.name.endswith(ends)]


def _raw_statistics(scope):
    return [v for v in moving_statistics(scope) if not v.op.name.endswith(EMA_SUFFIX)]


def network_variables(scope):
    """Trainable variables of one network, selected by its variable scope."""
    return tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope=scope + '/')


def sample_latents(batch, z_dim, z_dist):
    """In-graph latents [batch, z_dim] from the --z_dist distribution."""
    if z_dist == 'normal01':
        return tf.random_normal([batch, z_dim])
    low = -1.0 if z_dist == 'uniform_signed' else 0.0
    return tf.random_uniform([batch, z_dim], low, 1.0)


# ---- step 1: networks --------------------------------------------------------------------------------
GANModel = collections.namedtuple('GANModel', 'real y z fake real_logits fake_logits')


def build_model(real, y, z, cfg):
    """Generator on z, discriminator on the real and on the generated batch, all in training mode."""
    fake = generator(z, y, cfg, training=True)
    real_logits = discriminator(real, y, cfg, training=True)
    fake_logits = discriminator(fake, y, cfg, training=True)
    return GANModel(real, y, z, fake, real_logits, fake_logits)


# ---- step 2: losses ------------------------------------------------------------------------------------
GANLoss = collections.namedtuple('GANLoss', 'd_loss d_loss_real d_loss_fake g_loss r1_penalty')


def _xent(logits, target):
    """Mean sigmoid cross-entropy of logits against a constant target probability."""
    targets = tf.ones_like(logits) if target else tf.zeros_like(logits)
    if 0 < target < 1:
        targets *= target
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(logits=logits, labels=targets))


def generator_loss(fake_logits):
    """Non-saturating generator loss: -log D(G(z))."""
    return _xent(fake_logits, 1.0)


def r1_penalty(real, real_logits):
    """Mean squared norm of D's gradient at the real images, E ||grad_x D(x)||^2 (Mescheder et al. 2018),
    in float32 whatever the compute precision."""
    gradient = tf.cast(tf.gradients(tf.reduce_sum(real_logits), [real])[0], tf.float32)
    return tf.reduce_mean(tf.reduce_sum(tf.square(gradient), axis=list(range(1, real.shape.ndims))))


def build_losses(model, label_smoothing=0.0, r1_gamma=0.0):
    """Sigmoid cross-entropy losses of the reference: d_loss = real + fake, non-saturating g_loss.

    label_smoothing > 0 makes D's target for real images 1 - label_smoothing (one-sided, Salimans et al.
    2016); r1_gamma > 0 adds r1_gamma / 2 times the R1 gradient penalty on real images to d_loss.
    """
    d_loss_real = _xent(model.real_logits, 1.0 - label_smoothing)
    d_loss_fake = _xent(model.fake_logits, 0.0)
    d_loss = d_loss_real + d_loss_fake
    penalty = None
    if r1_gamma:
        penalty = r1_penalty(model.real, model.real_logits)
        d_loss += 0.5 * r1_gamma * penalty
    return GANLoss(d_loss, d_loss_real, d_loss_fake, generator_loss(model.fake_logits), penalty)


# ---- step 3: train ops ---------------------------------------------------------------------------------
TrainHParams = collections.namedtuple('TrainHParams', [
    'd_learning_rate', 'g_learning_rate',  # equal in the reference; two time scales (TTUR) when not
    'beta1', 'beta2',  # Adam's moment decays (0.5 and Adam's default 0.999 in the reference)
    'g_steps',  # generator updates per discriminator update (2 in the reference)
    'ema_decay',  # decay of the moving average of the generator's weights; 0: none
    'ema_start',  # step from which the average runs; before it the average follows the weights
    'label_smoothing',  # one-sided: D's target for real images is 1 - this; 0: none
    'r1_gamma',  # weight of the R1 gradient penalty on real images; 0: none
    'decay_start', 'decay_end',  # both learning rates fall linearly to 0 from step decay_start to decay_end
])


def train_hparams(learning_rate=0.0002, beta1=0.5, g_steps=2, d_learning_rate=None, g_learning_rate=None,
                  ema_decay=0.0, beta2=0.999, ema_start=0, label_smoothing=0.0, r1_gamma=0.0, decay_start=0,
                  decay_end=0):
    """TrainHParams with the reference's defaults; per-network learning rates default to learning_rate.
    decay_end <= decay_start: constant learning rates."""
    return TrainHParams(d_learning_rate or learning_rate, g_learning_rate or learning_rate, beta1, beta2, g_steps,
                        ema_decay, ema_start, label_smoothing, r1_gamma, decay_start, decay_end)


GANTrainOps = collections.namedtuple('GANTrainOps', [
    'step',  # one training step: the D update, g_steps G updates, the weight average, global_step + 1
    'd_loss', 'g_loss',  # losses from the forward passes of the updates themselves
    'global_step', 'model', 'loss',
])


def learning_rate_factor(step, decay_start, decay_end):
    """1 until decay_start, then falling linearly to 0 at decay_end (a tensor of the step), decay_end > decay_start."""
    progress = (tf.cast(step, tf.float32) - decay_start) / float(decay_end - decay_start)
    return 1.0 - tf.clip_by_value(progress, 0.0, 1.0)


def _adam(learning_rate, hparams, name):
    return tf.train.AdamOptimizer(learning_rate, beta1=hparams.beta1, beta2=hparams.beta2, name=name)


def _update(optimizer, loss, var_list, bn_updates):
    """Applies the optimizer's gradients of loss to var_list and runs the batch-norm average updates."""
    return tf.group(optimizer.minimize(loss, var_list=var_list), *bn_updates)


def build_train_ops(real, y, z, cfg, hparams, wrap_optimizer=None):
    """The whole training step as one op, so a single sess.run (or an NPU loop) executes it.

    Order as in the reference: one D update, then g_steps G updates with the same latents, each G update
    seeing the D (and G) weights left by the update before it. The first G update reuses the generator
    forward pass of the D update, which its weights have not changed since.
    wrap_optimizer(optimizer) -> optimizer adds device-specific loss scaling.
    """
    wrap_optimizer = wrap_optimizer or (lambda optimizer: optimizer)
    global_step = tf.train.get_or_create_global_step()
    factor = 1.0
    if hparams.decay_end > hparams.decay_start:
        factor = learning_rate_factor(global_step, hparams.decay_start, hparams.decay_end)
    d_optimizer = wrap_optimizer(_adam(hparams.d_learning_rate * factor, hparams, 'd_adam'))
    g_optimizer = wrap_optimizer(_adam(hparams.g_learning_rate * factor, hparams, 'g_adam'))

    with tf.name_scope('d_update') as scope:
        model = build_model(real, y, z, cfg)
        loss = build_losses(model, hparams.label_smoothing, hparams.r1_gamma)
        d_bn = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope + DISCRIMINATOR_SCOPE)
        previous = _update(d_optimizer, loss.d_loss, network_variables(DISCRIMINATOR_SCOPE), d_bn)
        g_bn = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope + GENERATOR_SCOPE)

    fake, g_loss = model.fake, loss.g_loss
    for k in range(hparams.g_steps):
        with tf.control_dependencies([previous]), tf.name_scope('g_update%d' % (k + 1)) as scope:
            if k > 0:
                fake = generator(z, y, cfg, training=True)
                g_bn = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope + GENERATOR_SCOPE)
            g_loss = generator_loss(discriminator(fake, y, cfg, training=True))
            previous = _update(g_optimizer, g_loss, network_variables(GENERATOR_SCOPE), g_bn)

    if hparams.ema_decay:
        pairs = [(v, ema_shadow(v)) for v in network_variables(GENERATOR_SCOPE)]  # created outside the deps
        for statistic in _raw_statistics(GENERATOR_SCOPE):
            ema_shadow(statistic)
        with tf.control_dependencies([previous]), tf.name_scope('g_average'):
            decay = hparams.ema_decay
            if hparams.ema_start:  # before it the average follows the weights, so it starts from them
                decay = tf.where(global_step < hparams.ema_start, 0.0, decay)
            previous = tf.group(*[tf.assign_sub(shadow, (shadow - v) * (1.0 - decay)) for v, shadow in pairs])
        # The averaged weights need batch-norm statistics of their own: the raw generator's do not fit them
        # and ruin the samples. A forward pass of the averaged generator on this step's latents moves them.
        with tf.control_dependencies([previous]), tf.name_scope('g_average_statistics') as scope:
            with tf.variable_scope(tf.get_variable_scope(), custom_getter=_ema_getter):
                generator(z, y, cfg, training=True)
            previous = tf.group(*tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope))

    with tf.control_dependencies([previous]):
        step = tf.group(tf.assign_add(global_step, 1), name='train_step')
    return GANTrainOps(step, loss.d_loss, g_loss, global_step, model, loss)


# ---- moving average of the generator's weights -----------------------------------------------------
EMA_SUFFIX = 'ExponentialMovingAverage'  # tf.train.ExponentialMovingAverage's name for the shadows


def ema_shadow(variable):
    """The moving-average copy of a generator variable, created on first use. Its initial value is the
    variable's initial-value tensor: initialised in the same sess.run (as tf.global_variables_initializer
    does), both start from the same random draw."""
    # A VariableScope object is entered as it is, so the name counts from the root wherever this is called
    # (the sampler's custom getter calls it inside the layer's own scope).
    with tf.variable_scope(tf.VariableScope(reuse=tf.AUTO_REUSE, name=''), auxiliary_name_scope=False):
        return tf.get_variable(variable.op.name + '/' + EMA_SUFFIX, initializer=variable.initial_value,
                               trainable=False, use_resource=True)


def _ema_getter(getter, name, *args, **kwargs):
    """Custom getter handing out the averaged generator's copy of each variable: the moving average of
    a weight, or the batch-norm moving statistics measured on the averaged weights."""
    return ema_shadow(getter(name, *args, **kwargs))


def start_averaged_statistics(sess, missing):
    """For a checkpoint that lacks the averaged generator's batch-norm statistics (of the names in missing),
    starts them from the raw generator's; returns how many were set."""
    wanted = [v for v in _raw_statistics(GENERATOR_SCOPE) if v.op.name + '/' + EMA_SUFFIX in missing]
    if wanted:
        sess.run([ema_shadow(v).assign(v) for v in wanted])
    return len(wanted)


# ---- sampling ------------------------------------------------------------------------------------------
Sampler = collections.namedtuple('Sampler', 'z y images')


def build_sampler(cfg, use_ema=False):
    """The generator with inference-mode batch norm, fed any number of latent rows by placeholders;
    with use_ema, it runs on the moving average of the generator's weights.

    Inputs `sampler/z` [N, z_dim] (and `sampler/y` [N, y_dim]); output SAMPLER_OUTPUT [N, H, W, C].
    """
    getter = _ema_getter if use_ema else None
    with tf.name_scope(SAMPLER_SCOPE), tf.variable_scope(tf.get_variable_scope(), custom_getter=getter):
        z = tf.placeholder(tf.float32, [None, cfg.z_dim], name='z')
        y = tf.placeholder(tf.float32, [None, cfg.y_dim], name='y') if cfg.y_dim else None
        images = tf.identity(generator(z, y, cfg, training=False), name='images')
    return Sampler(z, y, images)


def count_parameters(scope):
    """Number of trainable parameters of one network."""
    return sum(int(v.get_shape().num_elements()) for v in network_variables(scope))
