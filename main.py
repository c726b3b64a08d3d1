"""DCGAN training and sampling: flags, their validation, the training loop, and the post-training modes."""
import argparse
import collections
import math
import os
import signal
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # keep TensorFlow's C++ start-up chatter out of the log

import numpy as np  # noqa: E402

EPILOG = '''commands users type:
  python main.py --dataset mnist --input_height=28 --output_height=28 --train
  python main.py --dataset celebA --input_height=108 --crop --train
  python main.py --dataset celebA --input_height=108 --crop --prepare      (decode once, train faster)
  python main.py --dataset celebA --input_height=108 --crop --generate 64 (same flags without --train)
  python main.py --dataset mnist --input_height=28 --output_height=28 --visualize --visualize_option 0
'''


class UsageError(Exception):
    """A user mistake in flags or data: reported as one sentence with exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message + ' (see --help)')


def flag_bool(text):
    """argparse type for flags written --train, --train=True or --train=false."""
    value = str(text).strip().lower()
    if value in ('1', 'true', 't', 'yes', 'y'):
        return True
    if value in ('0', 'false', 'f', 'no', 'n'):
        return False
    raise argparse.ArgumentTypeError('expected true or false, got %r' % text)


def flag_size(text):
    """argparse type for --train_size: a positive integer or inf."""
    if str(text).strip().lower() in ('inf', 'infinity', 'np.inf'):
        return float('inf')
    return int(text)


# --recipe NAME -> the flags it sets (flags given on the command line still win; config.json records the values)
RECIPES = {
    'reference': {},  # the reference implementation's settings
    # two time-scale updates, one G update per D update, the averaged generator: the best MNIST scores
    # measured (README, Quality)
    'quality': {'d_learning_rate': 0.0004, 'g_learning_rate': 0.0001, 'g_steps': 1, 'ema_decay': 0.999},
}


def build_parser():
    p = Parser(description='DCGAN (Radford et al. 2015) in TensorFlow 1.x graph mode, for Ascend NPU, GPU '
                           'and CPU.', epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)

    def switch(name, help_text):
        p.add_argument('--' + name, type=flag_bool, nargs='?', const=True, default=False, help=help_text)

    # ---- the reference's flags (same names and defaults)
    p.add_argument('--epoch', type=int, default=25, help='epochs to train [25]')
    p.add_argument('--learning_rate', type=float, default=0.0002, help='Adam learning rate of both networks [0.0002]')
    p.add_argument('--beta1', type=float, default=0.5, help='Adam beta1 (momentum) [0.5]')
    p.add_argument('--train_size', type=flag_size, default=float('inf'),
                   help='use at most this many images per epoch [inf]')
    p.add_argument('--batch_size', type=int, default=64,
                   help='images per step; also the number of fixed samples in each grid [64]')
    p.add_argument('--input_height', type=int, default=None,
                   help='height of the centre crop taken from each source image with --crop [108; 28 for mnist]')
    p.add_argument('--input_width', type=int, default=None, help='width of that crop [input_height]')
    p.add_argument('--output_height', type=int, default=None,
                   help='height of the images the networks see and make [64; 28 for mnist]')
    p.add_argument('--output_width', type=int, default=None, help='width of those images [output_height]')
    p.add_argument('--dataset', default='celebA',
                   help='sub-folder of data_dir holding the images; "mnist" is the conditional MNIST model [celebA]')
    p.add_argument('--input_fname_pattern', default='*.jpg', help='glob of the image files [*.jpg]')
    p.add_argument('--data_dir', default='./data', help='root of the data sets [./data]')
    p.add_argument('--out_dir', default='./out', help='root of the run folders [./out]')
    p.add_argument('--out_name', default='',
                   help='run folder name under out_dir; empty: derived from data set and model settings')
    p.add_argument('--checkpoint_dir', default='checkpoint', help='checkpoint sub-folder of the run folder')
    p.add_argument('--sample_dir', default='samples', help='sample-grid sub-folder of the run folder')
    switch('train', 'train (resuming the run if it has a checkpoint); without it, load the run for the modes below. '
                    'Training and the post-training modes (--generate, --visualize, --evaluate, --export, --freeze) '
                    'are separate commands: run those after training, without --train')
    switch('restart', 'with --train: move the run\'s checkpoints aside to <checkpoint_dir>.old-<n>/ and start again at '
                      'step 0 (without it a run folder that holds checkpoints always resumes)')
    switch('crop', 'centre-crop input_height x input_width from each image, then resize to the output size; '
                   'without it the whole image is resized')
    switch('visualize', 'write visualisations (--visualize_option) of the trained generator')
    switch('export', 'write a model-only checkpoint named for --batch_size to <run>/export/')
    switch('freeze', 'write a frozen GraphDef of the sampler to <run>/frozen/sampler.pb')
    p.add_argument('--max_to_keep', type=int, default=1, help='checkpoints kept [1]')
    p.add_argument('--sample_freq', type=int, default=200, help='steps between sample grids [200]')
    p.add_argument('--ckpt_freq', type=int, default=200, help='steps between checkpoints [200]')
    p.add_argument('--z_dim', type=int, default=100, help='latent size [100]')
    p.add_argument('--z_dist', default='uniform_signed',
                   help='latent distribution: uniform_signed U(-1,1), uniform_unsigned U(0,1), normal01 N(0,1)')
    switch('G_img_sum', 'add generated-image summaries to the TensorBoard log')
    # ---- added
    p.add_argument('--d_learning_rate', type=float, default=None,
                   help='discriminator learning rate (two time-scale updates) [--learning_rate]')
    p.add_argument('--g_learning_rate', type=float, default=None,
                   help='generator learning rate (two time-scale updates) [--learning_rate]')
    p.add_argument('--ema_decay', type=float, default=0.0,
                   help='keep a moving average of the generator weights with this decay (e.g. 0.999) and use it '
                        'for samples, --generate and evaluation; 0: off [0]')
    p.add_argument('--ema_start', type=int, default=0,
                   help='step from which the generator average runs; before it the average follows the weights [0]')
    p.add_argument('--beta2', type=float, default=0.999, help='Adam beta2 of both networks [0.999]')
    p.add_argument('--label_smoothing', type=float, default=0.0,
                   help="one-sided label smoothing: D's target for real images is 1 - this (e.g. 0.1); 0: off [0]")
    p.add_argument('--r1_gamma', type=float, default=0.0,
                   help='weight of the R1 gradient penalty on real images (Mescheder et al. 2018), added to the D '
                        'loss as gamma/2 * E|grad D(x)|^2; 0: off [0]')
    p.add_argument('--lr_decay_epochs', type=int, default=0,
                   help='let both learning rates fall linearly to 0 over this many final epochs; 0: constant [0]')
    p.add_argument('--g_steps', type=int, default=2, help='generator updates per discriminator update [2, as the reference]')
    p.add_argument('--recipe', default='reference', choices=sorted(RECIPES),
                   help='a named set of the training options above: quality sets %s; flags given beside it win '
                        '[reference]' % ' '.join('--%s %s' % item for item in sorted(RECIPES['quality'].items())))
    p.add_argument('--train_steps', type=int, default=0, help='stop at this global step; 0: --epoch decides [0]')
    p.add_argument('--seed', type=int, default=0, help='seed of data order, latents and initial weights [0]')
    p.add_argument('--visualize_option', type=int, default=1,
                   help='0 random grid, 1 grid per z dimension swept, 2 GIFs of random dimensions, '
                        '3 a GIF per dimension, 4 one merged GIF of all dimensions [1]')
    p.add_argument('--generate', type=int, default=0, metavar='N',
                   help='write N generated images and an .npz of them to <run>/generated/ [0]')
    switch('evaluate', 'score the trained generator (MNIST: classifier label accuracy and Frechet distance; RGB: '
                       'FID and KID) and append the result to <run>/metrics.jsonl')
    p.add_argument('--eval_freq', type=int, default=0,
                   help='evaluate every N training steps and keep the best checkpoint in checkpoint/best/; 0: off [0]')
    p.add_argument('--eval_samples', type=int, default=0,
                   help='generated images per evaluation [0: 10,000 for MNIST, 50,000 for FID]')
    p.add_argument('--inception_graph', default='',
                   help='frozen Inception graph for FID [<data_dir>/inception-2015-12-05/classify_image_graph_def.pb, '
                        'fetched by `python download.py inception`]')
    p.add_argument('--eval_classifier_steps', type=int, default=3000,
                   help='training steps of the MNIST scoring classifier, trained once and cached [3000]')
    p.add_argument('--prepare', type=flag_bool, nargs='?', const=True, default=False,
                   help='decode, crop and resize the image folder once into a uint8 cache that training reads')
    switch('mnist_use_test', 'train MNIST on all 70,000 digits as the reference (default: the 60,000 '
                             'training digits, keeping the test set clean for evaluation)')
    p.add_argument('--c_dim', type=int, default=0, help='image channels, 1 or 3; 0: from the data [0]')
    p.add_argument('--init_checkpoint', default='',
                   help='start a new run from this checkpoint (e.g. one of the reference or its Ascend port)')
    p.add_argument('--device', default='auto', help='auto, npu, gpu or cpu [auto: NPU, else GPU, else CPU]')
    p.add_argument('--precision_mode', default='',
                   help='allow_mix_precision, allow_fp32_to_fp16, force_fp16 or must_keep_origin_dtype '
                        '[NPU: allow_mix_precision; GPU and CPU: float32]')
    p.add_argument('--iterations_per_loop', type=int, default=1,
                   help='NPU only: steps per sess.run, data and latents in the graph (implies --input_pipeline '
                        'graph) [1]')
    p.add_argument('--input_pipeline', default='auto',
                   help='host: batches made by Python threads (decoding with Pillow, prepared cache read from '
                        'disk); graph: all tf.data (arrays held in memory, files decoded by TensorFlow); '
                        'auto: graph for MNIST and for a prepared cache that fits in memory, host otherwise '
                        '[auto]')
    switch('over_dump', 'NPU only: dump the operators that overflow')
    p.add_argument('--over_dump_path', default='', help='NPU overflow dump folder [<run>/overflow]')
    switch('profiling', 'NPU only: collect a profile')
    p.add_argument('--profiling_options', default='', help='NPU profiling options JSON [traces to <run>/profiling]')
    # ---- data parallelism: ranks come from TF_CONFIG (GPU, CPU) or RANK_SIZE/RANK_ID (NPU)
    p.add_argument('--collective_timeout', type=float, default=300.0,
                   help='with several ranks: seconds a rank waits for the others in a step before it stops '
                        'the job, naming the rank that is gone [300]')
    return p


def parse_flags(argv=None):
    """The parsed command line, the --recipe's flags as defaults under the ones given."""
    parser = build_parser()
    flags = parser.parse_args(argv)
    if RECIPES[flags.recipe]:
        parser.set_defaults(**RECIPES[flags.recipe])
        flags = parser.parse_args(argv)
    return flags


# ---- the run configuration: the flags as resolved, frozen ------------------------------------------------
FLAG_NAMES = tuple(action.dest for action in build_parser()._actions if action.dest != 'help')
# found for the run by main(): its folder, devices.Precision, labels or not and the channels (both from the
# data, or for the post-training modes from the run's config.json), and the data.ImageSpec of an image folder
RUN_FIELDS = ('run_dir', 'precision', 'conditional', 'channels', 'image_spec')
RunConfig = collections.namedtuple('RunConfig', FLAG_NAMES + RUN_FIELDS)
RunConfig.__doc__ = """The settings of one run, immutable: every flag (defaults that depend on other flags
filled in; device is the device chosen), then RUN_FIELDS."""

DataSet = collections.namedtuple('DataSet', [
    'source',  # object with __len__ and batch(indices, epoch) -> (uint8 images, uint8 labels or None)
    'channels', 'conditional', 'description',
    'spec',  # data.ImageSpec of an image folder; None for MNIST
])

PIPELINES = ('auto', 'host', 'graph')
DEVICES = ('auto', 'npu', 'gpu', 'cpu')
# the NpuOptimizer's precision_mode values; elsewhere allow_mix_precision and force_fp16 ask for fp16/bf16
PRECISION_MODES = ('allow_mix_precision', 'allow_fp32_to_fp16', 'force_fp16', 'must_keep_origin_dtype')


def resolve_flags(flags):
    """The parsed flags as a RunConfig, flags themselves left as parsed: image sizes default from the data
    set and from each other, --device is lower-cased, and --iterations_per_loop above 1 implies the graph
    pipeline (an unknown --input_pipeline is kept for validate_numbers to refuse). The run fields are None
    and device is the one asked for until main() has found them."""
    mnist = flags.dataset == 'mnist'
    values = dict(vars(flags))
    input_height = (28 if mnist else 108) if flags.input_height is None else flags.input_height
    output_height = (28 if mnist else 64) if flags.output_height is None else flags.output_height
    values.update(input_height=input_height, input_width=flags.input_width or input_height,
                  output_height=output_height, output_width=flags.output_width or output_height,
                  device=flags.device.lower())
    if flags.iterations_per_loop > 1 and flags.input_pipeline in PIPELINES:
        values['input_pipeline'] = 'graph'
    values.update(dict.fromkeys(RUN_FIELDS))
    return RunConfig(**values)


# ---- validation: every check before any graph is built ----------------------------------------------------
MAX_SEED = 2 ** 32 - 1  # numpy's RandomState takes seeds below 2**32
MAX_TRAIN_STEPS = 10 ** 9
MAX_Z_DIM = 65536
POST_TRAINING_MODES = ('generate', 'visualize', 'evaluate', 'export', 'freeze')


def validate_numbers(config):
    """UsageError for the first setting of config (from resolve_flags) that cannot work."""
    from utils import Z_DISTS  # numpy and PIL only: a mistake in the flags is reported without TensorFlow
    for name in sorted(FLAG_NAMES):  # argparse's float() takes inf and nan
        value = getattr(config, name)
        if isinstance(value, float) and name != 'train_size' and not math.isfinite(value):
            raise UsageError('--%s must be a finite number, got %s.' % (name, value))
    positive = ('epoch', 'batch_size', 'input_height', 'input_width', 'output_height', 'output_width',
                'z_dim', 'g_steps', 'sample_freq', 'ckpt_freq', 'max_to_keep', 'iterations_per_loop',
                'eval_classifier_steps')
    for name in positive:
        if getattr(config, name) < 1:
            raise UsageError('--%s must be at least 1, got %s.' % (name, getattr(config, name)))
    for name in ('train_steps', 'generate', 'seed', 'eval_freq', 'eval_samples'):
        if getattr(config, name) < 0:
            raise UsageError('--%s must not be negative, got %s.' % (name, getattr(config, name)))
    for name in ('learning_rate', 'd_learning_rate', 'g_learning_rate'):
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise UsageError('--%s must be positive, got %s.' % (name, value))
    if not 0 <= config.ema_decay < 1:
        raise UsageError('--ema_decay must be in [0, 1), got %s.' % config.ema_decay)
    for name in ('beta1', 'beta2', 'label_smoothing'):
        if not 0 <= getattr(config, name) < 1:
            raise UsageError('--%s must be in [0, 1), got %s.' % (name, getattr(config, name)))
    for name in ('r1_gamma', 'ema_start', 'lr_decay_epochs'):
        if not getattr(config, name) >= 0:
            raise UsageError('--%s must not be negative, got %s.' % (name, getattr(config, name)))
    if config.train_size < 1:
        raise UsageError('--train_size must be at least 1 (or inf), got %s.' % config.train_size)
    if config.seed > MAX_SEED:
        raise UsageError('--seed must be at most %d (2**32-1), got %d.' % (MAX_SEED, config.seed))
    if config.train_steps > MAX_TRAIN_STEPS:
        raise UsageError('--train_steps must be at most %d, got %d.' % (MAX_TRAIN_STEPS, config.train_steps))
    z_limit = max_z_dim(config)
    if config.z_dim > z_limit:
        raise UsageError('--z_dim must be at most %d for this model on this machine (the paper uses 100), got %d.'
                         % (z_limit, config.z_dim))
    if config.out_name:
        parts = os.path.normpath(config.out_name).replace('\\', '/').split('/')
        if os.path.isabs(config.out_name) or '..' in parts or parts == ['.']:
            raise UsageError('--out_name %r must name a folder inside --out_dir (no absolute path, no "..").'
                             % config.out_name)
    if config.z_dist not in Z_DISTS:
        raise UsageError('unknown --z_dist %r: use one of %s.' % (config.z_dist, ', '.join(Z_DISTS)))
    if config.visualize_option not in range(5):
        raise UsageError('--visualize_option must be 0, 1, 2, 3 or 4, got %d.' % config.visualize_option)
    if config.device not in DEVICES:
        raise UsageError('unknown --device %r: use one of %s.' % (config.device, ', '.join(DEVICES)))
    if config.precision_mode and config.precision_mode not in PRECISION_MODES:
        raise UsageError('unknown --precision_mode %r: use one of %s.'
                         % (config.precision_mode, ', '.join(PRECISION_MODES)))
    if config.input_pipeline not in PIPELINES:
        raise UsageError('unknown --input_pipeline %r: use auto, host or graph.' % config.input_pipeline)
    if config.c_dim not in (0, 1, 3):
        raise UsageError('--c_dim must be 1 (grayscale), 3 (RGB) or 0 (from the data), got %d.' % config.c_dim)
    if min(config.output_height, config.output_width) < 8:
        raise UsageError('--output_height/--output_width must be at least 8 for the four stride-2 layers.')
    if config.dataset == 'mnist' and (config.output_height, config.output_width) != (28, 28):
        raise UsageError('--dataset mnist trains the conditional 28x28 network: use --input_height=28 '
                         '--output_height=28 (got output %dx%d).' % (config.output_height, config.output_width))
    if config.dataset == 'mnist' and config.crop:
        raise UsageError('--crop does not apply to --dataset mnist (its digits are already 28x28).')
    modes = [m for m in ('train', 'prepare') if getattr(config, m)]
    if len(modes) > 1:
        raise UsageError('--train and --prepare are separate steps: run --prepare first, then --train.')
    post = [m for m in POST_TRAINING_MODES if getattr(config, m)]
    if modes and post:
        raise UsageError('--%s and --%s are separate steps: %s first, then run the same flags with --%s instead of '
                         '--%s.' % (modes[0], post[0], 'train' if modes[0] == 'train' else 'prepare and train',
                                    post[0], modes[0]))
    if config.restart and not config.train:
        raise UsageError('--restart starts a training run again: add --train.')
    if config.init_checkpoint and not config.train:
        raise UsageError('--init_checkpoint starts a training run: add --train.')


def max_z_dim(config):
    """The largest --z_dim whose generator input layer, with its gradient and two Adam slots (4 x float32
    per weight), takes at most half of this machine's memory; never above MAX_Z_DIM."""
    if config.dataset == 'mnist':
        units = 1024  # the conditional generator's first fully connected layer
    else:
        units = 512 * int(math.ceil(config.output_height / 16.0)) * int(math.ceil(config.output_width / 16.0))
    try:
        memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (AttributeError, ValueError, OSError):
        memory = 16 << 30
    return int(max(1, min(MAX_Z_DIM, memory // 2 // (units * 16))))


def data_hint(config):
    if config.dataset in ('mnist', 'celebA'):
        return 'run `python download.py %s --data_dir %s` to fetch it' % (config.dataset, config.data_dir)
    return 'put your images (%s) there, or pass --data_dir/--dataset' % config.input_fname_pattern


def open_dataset(config, use_prepared=True):
    """The training data as a DataSet; UsageError when it is missing or does not fit the config.
    An image folder comes as its prepared cache when one matches (use_prepared), else as image files."""
    import data
    folder = os.path.join(config.data_dir, config.dataset)
    if config.dataset == 'mnist':
        if not data.mnist_available(folder, config.mnist_use_test):
            raise UsageError('MNIST files not found in %s: %s.' % (folder, data_hint(config)))
        try:
            images, labels = data.load_mnist(folder, config.mnist_use_test)
        except data.DataError as error:
            raise UsageError(str(error))
        if config.c_dim == 3:
            raise UsageError('--c_dim 3 does not fit MNIST, whose digits are grayscale.')
        source = data.ArraySource(images, labels)
        return DataSet(source, 1, True, '%d MNIST digits from %s' % (len(source), folder), None)
    if not os.path.isdir(folder):
        raise UsageError('data folder %s does not exist: %s.' % (folder, data_hint(config)))
    paths = data.list_images(folder, config.input_fname_pattern)
    if not paths:
        raise UsageError('no files matching %s in %s: %s (or set --input_fname_pattern).'
                         % (config.input_fname_pattern, folder, data_hint(config)))
    first = first_readable(paths)
    if first is None:
        raise UsageError('none of the first images in %s could be opened; is it an image folder?' % folder)
    channels = config.c_dim or data.image_channels(first)
    if config.crop:
        height, width = data.image_size(first)
        if config.input_height > height or config.input_width > width:
            raise UsageError('--input_height/--input_width %dx%d is larger than the images in %s (%s is '
                             '%dx%d): choose a crop that fits.' % (config.input_height, config.input_width,
                                                                    folder, os.path.basename(first), height,
                                                                    width))
    spec = image_spec(config, channels)
    prepared = data.find_prepared(config.data_dir, config.dataset, spec, paths) if use_prepared else None
    if prepared:
        source = data.PreparedSource(prepared)
        return DataSet(source, channels, False, '%d prepared images from %s' % (len(source), prepared), spec)
    return DataSet(data.FolderSource(paths, spec), channels, False,
                   '%d image files in %s, decoded while training (--prepare makes this faster)'
                   % (len(paths), folder), spec)


def image_spec(config, channels):
    """How the images of an image folder become training images (crop, output size, channels)."""
    import data
    return data.ImageSpec(config.crop, config.input_height, config.input_width, config.output_height,
                          config.output_width, channels)


def first_readable(paths, tries=16):
    from PIL import Image
    import data
    for path in paths[:tries]:
        try:
            with Image.open(path):
                return path
        except data.UNREADABLE:
            continue
    return None


def run_dir_of(config):
    from runs import default_run_name
    name = config.out_name or default_run_name(config.dataset, config.output_height, config.output_width,
                                              config.z_dim, config.crop, config.input_height, config.input_width)
    return os.path.join(config.out_dir, name)


# ---- training ------------------------------------------------------------------------------------------
class StopSignal(object):
    """Turns SIGINT/SIGTERM into a request to stop after the current step (then save and exit)."""

    def __init__(self):
        self.signum = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user really wants out now
        self.signum = signum
        print('\n%s received: finishing this step, saving a checkpoint, then exiting.'
              % signal.Signals(signum).name, flush=True)


def train(config, dataset, ranks=None):
    from tf_compat import tf
    import data
    import distributed
    import devices
    import evaluate
    import inference
    import model
    import npu
    import ops
    import runs
    import steplog

    run_dir, device, precision = config.run_dir, config.device, config.precision
    cfg = inference.net_config(config)
    ops.set_impl(devices.kernel_impl(device))
    low, high = model.data_range(cfg)
    batch = config.batch_size
    ranks = ranks or distributed.Context()  # --batch_size is per rank; a step takes batch x ranks.size images
    steps_per_epoch = data.batches_per_epoch(len(dataset.source), batch * ranks.size, config.train_size)
    total_steps = config.train_steps or config.epoch * steps_per_epoch
    epochs = int(math.ceil(total_steps / float(steps_per_epoch)))

    # ---- graph: input pipeline, networks, losses, train ops, sampler, summaries
    tf.set_random_seed(ranks.rank_seed(config.seed))  # latents differ per rank
    image_shape = [batch, config.output_height, config.output_width, dataset.channels]
    inputs = make_input(config, dataset, image_shape, steps_per_epoch, epochs, (ranks.rank, ranks.size))
    real = tf.cast(inputs.images, tf.float32) * ((high - low) / 255.0) + low  # uint8 -> data range
    y = tf.one_hot(tf.cast(inputs.labels, tf.int32), cfg.y_dim) if cfg.y_dim else None
    z = model.sample_latents(batch, cfg.z_dim, config.z_dist)
    decay_steps = min(config.lr_decay_epochs * steps_per_epoch, total_steps)
    hparams = model.train_hparams(config.learning_rate, config.beta1, config.g_steps, config.d_learning_rate,
                                  config.g_learning_rate, config.ema_decay, config.beta2, config.ema_start,
                                  config.label_smoothing, config.r1_gamma, total_steps - decay_steps, total_steps)
    train_ops = model.build_train_ops(real, y, z, cfg, hparams,
                                      ranks.optimizer_wrapper(devices.optimizer_wrapper(device, precision)))
    # several ranks: moving statistics averaged after each step; losses and stop requests agreed on
    step_op = ranks.sync_after(train_ops.step, model.moving_statistics())
    agreement = ranks.step_agreement(train_ops.d_loss, train_ops.g_loss)
    sampler = model.build_sampler(cfg, use_ema=config.ema_decay > 0)
    summaries = summary_op(tf, train_ops, z, config.G_img_sum)
    saver = tf.train.Saver(max_to_keep=config.max_to_keep)  # built after the optimisers: Adam state is saved
    broadcast = ranks.broadcast_op(tf.global_variables())  # rank 0's variables to all, once at the start
    evaluator = evaluate.Evaluator(config, cfg) if config.eval_freq and ranks.is_chief else None
    print('parameters: generator %s, discriminator %s' % (
        format(model.count_parameters(model.GENERATOR_SCOPE), ','),
        format(model.count_parameters(model.DISCRIMINATOR_SCOPE), ',')))

    if ranks.is_chief:
        checkpoint_dir = prepare_checkpoint_dir(config)
        sample_dir = runs.subdir(run_dir, config.sample_dir)
    else:  # rank 0 alone writes into the run folder
        checkpoint_dir = os.path.join(run_dir, config.checkpoint_dir)
        sample_dir = os.path.join(run_dir, config.sample_dir)
    checkpoint_prefix = os.path.join(checkpoint_dir, 'model.b%d' % batch)
    checkpoints = runs.CheckpointKeeper(saver, checkpoint_dir, checkpoint_prefix, config.max_to_keep)
    sess_config = ranks.session_config(devices.session_config(device, precision, npu_options(config)))
    sess = devices.make_session(device, sess_config, ranks.session_target(sess_config))
    with sess:
        # ---- start or resume
        if ranks.is_chief:
            step = start_or_resume(sess, checkpoints, train_ops.global_step, config.init_checkpoint)
        else:
            sess.run(tf.global_variables_initializer())
        if broadcast is not None:  # every rank continues from rank 0's variables and step
            ranks.run(sess, broadcast, what="the broadcast of rank 0's variables")
            step = int(sess.run(train_ops.global_step))
            print('rank %d: step %d, variables sha1 %s' % (ranks.rank, step, ranks.digest(sess, tf.global_variables())))
        inputs.initialize(sess, step)
        steps_per_run = config.iterations_per_loop
        if steps_per_run > 1:  # the NPU runs that many steps per sess.run, data and latents in the graph
            step_op = npu.set_iterations_per_loop(sess, step_op, steps_per_run)
        if ranks.is_chief:
            writer = tf.summary.FileWriter(runs.subdir(run_dir, 'logs'), sess.graph if step == 0 else None)
            grids = SampleGrids(sess, sampler, runs.fixed_latents(run_dir, lambda: sample_inputs(config, cfg)),
                                sample_dir, (low, high))
            grids.save_reals(dataset.source, config.seed, batch)
        else:
            writer = grids = Unwritten()
        keeper = BestKeeper(sess, evaluator, run_dir, os.path.join(checkpoint_dir, 'best', 'model.b%d' % batch),
                            inference.Generator(sess, sampler, cfg), writer) if evaluator else None

        def save_checkpoint(at_step):
            checkpoints.save(sess, at_step)

        if not ranks.is_chief:
            save_checkpoint = Unwritten().save  # noqa: F811  (rank 0 alone saves)

        # ---- the loop
        print('training %s for %d steps (%d per epoch, batch %d%s) from step %d on %s, %s'
              % (dataset.description, total_steps, steps_per_epoch, batch,
                 ' x %d ranks' % ranks.size if ranks.distributed else '', step, device, precision.compute))
        stop = StopSignal()
        stopping, patient = False, False
        start_time, epoch_start = time.time(), (time.time(), step)
        while step < total_steps and not stopping:
            want_summary = ranks.is_chief and (crossed(step + steps_per_run, steps_per_run, SUMMARY_FREQ) or step == 0)
            results = ranks.run(sess, [step_op, agreement.fetches] + ([summaries] if want_summary else []),
                                agreement.feed(stop.signum is not None), patient=patient)
            step += steps_per_run
            epoch, batch_index = divmod(step - 1, steps_per_epoch)
            d_loss, g_loss, stopping = agreement.read(results[1], stop.signum is not None)
            if stopping and stop.signum is None:  # another rank was asked to stop: all stop after this step
                stop.signum = signal.SIGTERM
            print(steplog.format_line(step, epoch, epochs, batch_index, steps_per_epoch, time.time() - start_time,
                                      d_loss, g_loss), flush=True)
            if want_summary:
                writer.add_summary(results[2], step)
            if not (np.isfinite(d_loss) and np.isfinite(g_loss)) and precision.compute == 'float32':
                raise TrainingDiverged(diverged_message(config, d_loss, g_loss, step, checkpoints))
            if crossed(step, steps_per_run, config.sample_freq):
                grids.save(step)
            if crossed(step, steps_per_run, config.ckpt_freq):
                save_checkpoint(step)
            if keeper and crossed(step, steps_per_run, config.eval_freq):
                keeper.evaluate(step)
            # while rank 0 evaluates, the others wait for it in the next step as long as it answers
            patient = bool(config.eval_freq) and crossed(step, steps_per_run, config.eval_freq)
            if crossed(step, steps_per_run, steps_per_epoch):
                seconds = time.time() - epoch_start[0]
                skipped = dataset.source.skipped(epoch)
                print('epoch %d done: %d steps in %.1f s (%.1f images/s)%s' % (
                    epoch, step - epoch_start[1], seconds,
                    (step - epoch_start[1]) * batch * ranks.size / max(seconds, 1e-9),
                    ', %d unreadable images skipped' % skipped if skipped else ''), flush=True)
                epoch_start = (time.time(), step)

        # ---- finish: always leave a checkpoint and a final grid
        save_checkpoint(step)
        if step % config.sample_freq:
            grids.save(step)
        writer.close()
        if ranks.distributed:
            print('rank %d: step %d, variables sha1 %s' % (ranks.rank, step, ranks.digest(sess, tf.global_variables())))
        if stop.signum is not None:
            print('stopped at step %d by %s; checkpoint saved in %s. Run the same command to resume.'
                  % (step, signal.Signals(stop.signum).name, checkpoint_dir))
            return 128 + stop.signum
        if not ranks.is_chief:
            print('done: step %d (rank 0 writes the checkpoint and the samples).' % step)
            return 0
        print('done: step %d; checkpoint in %s, samples in %s.' % (step, checkpoint_dir, sample_dir))
        return 0


def prepare_checkpoint_dir(config):
    """The run's checkpoint folder, rid of the temporary files of failed or killed saves; with --restart
    the earlier checkpoints are first moved aside (never deleted)."""
    import runs
    run_dir = config.run_dir
    checkpoint_dir = os.path.join(run_dir, config.checkpoint_dir)
    freed = runs.clean_temp_files(checkpoint_dir)
    if freed:
        print('removed %.1f MB of temporary files left by an interrupted save in %s.' % (freed / 1e6, checkpoint_dir))
    if config.restart:
        moved = runs.move_aside(checkpoint_dir)
        if moved:
            print('--restart: moved the earlier checkpoints aside to %s; training starts again at step 0.' % moved)
    return runs.subdir(run_dir, config.checkpoint_dir)


def diverged_message(config, d_loss, g_loss, step, checkpoints):
    """The sentence for non-finite losses: the weights are not saved, and where the run can go on from."""
    rate = config.d_learning_rate or config.g_learning_rate or config.learning_rate
    where = ('the newest checkpoint, step %d (%s), holds finite weights: run the same command with a lower '
             '--learning_rate (now %g) to resume from it' % (checkpoints.last_saved[0], checkpoints.last_saved[1], rate)
             if checkpoints.last_saved else
             'no checkpoint was written before it: run the same command with a lower --learning_rate (now %g) to '
             'start again' % rate)
    return ('losses became non-finite at step %d (d_loss %.4g, g_loss %.4g), so these weights were not saved; %s.'
            % (step, d_loss, g_loss, where))


def start_or_resume(sess, checkpoints, global_step, init_checkpoint):
    """Restores the run's newest readable checkpoint (resume; found from the files, damaged ones skipped),
    else --init_checkpoint (a new run from its weights, step 0), else initialises; returns the global step
    to continue from."""
    from tf_compat import tf
    import model
    import runs
    resume_from, missing = runs.restore_newest(sess, checkpoints.checkpoint_dir, move_damaged=True)
    start_from = resume_from or init_checkpoint
    if not start_from:
        sess.run(tf.global_variables_initializer())
        return 0
    if not resume_from:
        try:
            missing = runs.restore(sess, start_from)
        except tf.errors.OpError as error:
            raise runs.CheckpointError('--init_checkpoint %s cannot be read (%s).'
                                       % (start_from, runs.error_reason(error)))
    step = int(sess.run(global_step))
    if 'global_step' in missing:  # the reference kept its step only in the file name
        step = runs.step_from_path(start_from)
    print('%s %s at step %d.' % ('resumed from' if resume_from else 'initialised from', start_from, step))
    if missing:
        print('initialised fresh (not in that checkpoint): %d variables, e.g. %s'
              % (len(missing), ', '.join(missing[:4])))
        if model.start_averaged_statistics(sess, missing):
            print('the averaged generator\'s batch-norm statistics start from the raw generator\'s; '
                  'training moves them to the averaged weights within a few dozen steps.')
    if not resume_from:
        step = 0  # a foreign checkpoint's step belongs to another run
    else:
        checkpoints.resumed(resume_from, step)
    sess.run(global_step.assign(step))
    return step


class Unwritten(object):
    """Stands in for the summary writer, the sample grids and the checkpoint saver on ranks other than 0."""

    def add_summary(self, *args):
        pass

    def save(self, *args):
        pass

    def close(self):
        pass


class SampleGrids(object):
    """Writes the grids of the fixed latents (MNIST: one digit class per row) and the grid of reals."""

    def __init__(self, sess, sampler, latents, sample_dir, value_range):
        self.sess, self.sampler, self.sample_dir, self.value_range = sess, sampler, sample_dir, value_range
        self.feed = {sampler.z: latents[0]}
        if sampler.y is not None:
            self.feed[sampler.y] = latents[1]

    def save(self, step):
        import utils
        images = utils.to_uint8(self.sess.run(self.sampler.images, self.feed), self.value_range)
        rows = 10 if self.sampler.y is not None else None
        grid = utils.make_grid(images, rows, len(images) // 10 if rows else None)
        utils.save_image(os.path.join(self.sample_dir, 'train_%08d.png' % step), grid)

    def save_reals(self, source, seed, batch):
        """reals.png, once per run: the first batch of the first epoch."""
        import data
        import utils
        path = os.path.join(self.sample_dir, 'reals.png')
        if not os.path.isfile(path):
            images, _ = source.batch(data.epoch_permutation(len(source), seed, 0)[:batch], None)  # not counted
            utils.save_image(path, utils.make_grid(images))


class BestKeeper(object):
    """Evaluates during training (--eval_freq), logs the scores to TensorBoard, and keeps the checkpoint
    with the best score so far (also across resumed sessions of the run) under checkpoint/best/."""

    def __init__(self, sess, evaluator, run_dir, prefix, generator, writer):
        from tf_compat import tf
        import metrics
        self.sess, self.evaluator, self.run_dir, self.prefix = sess, evaluator, run_dir, prefix
        self.generator, self.writer = generator, writer
        self.saver = tf.train.Saver(max_to_keep=1, save_relative_paths=True)  # the run folder stays movable
        scores = [evaluator.score(r) for r in metrics.read_metrics(run_dir)]
        scores = [s for s in scores if s is not None]
        self.best = min(scores) if scores else None

    def evaluate(self, step):
        from tf_compat import tf
        import metrics
        record = self.evaluator(self.generator, step, self.run_dir)
        values = [tf.Summary.Value(tag='eval/' + k, simple_value=float(v)) for k, v in sorted(record.items())
                  if isinstance(v, float) and np.isfinite(v)]
        self.writer.add_summary(tf.Summary(value=values), step)
        score = self.evaluator.score(record)
        if metrics.best_score_improved(self.best, score):
            self.best = score
            path = self.saver.save(self.sess, os.path.abspath(self.prefix), global_step=step, latest_filename='checkpoint')
            print('best %s so far (%.4f): saved %s' % (self.evaluator.score_name, score, path))


def crossed(step, steps_per_run, every):
    """True when the last run of steps_per_run steps, ending at step, passed a multiple of every."""
    return step // every > (step - steps_per_run) // every


def make_input(config, dataset, image_shape, steps_per_epoch, epochs, shard=(0, 1)):
    """The input pipeline of --input_pipeline (graph: all TensorFlow; arrays held in memory; auto: see
    pipeline.default_kind); shard (rank, size): this rank's slice of each global batch."""
    import pipeline
    inputs, kind = pipeline.make_input(config.input_pipeline, dataset.source, config.batch_size, image_shape,
                                       config.seed, steps_per_epoch, epochs, shard)
    print('input pipeline: %s%s' % (kind, ' (auto)' if config.input_pipeline == 'auto' else ''))
    return inputs


class TrainingDiverged(Exception):
    """Non-finite losses in float32 training."""


SUMMARY_FREQ = 10  # steps between TensorBoard summaries


def summary_op(tf, train_ops, z, image_summary):
    model, loss = train_ops.model, train_ops.loss
    items = [tf.summary.histogram('z', z),
             tf.summary.histogram('d', tf.nn.sigmoid(model.real_logits)),
             tf.summary.histogram('d_', tf.nn.sigmoid(model.fake_logits)),
             tf.summary.scalar('d_loss_real', loss.d_loss_real),
             tf.summary.scalar('d_loss_fake', loss.d_loss_fake),
             tf.summary.scalar('d_loss', train_ops.d_loss),
             tf.summary.scalar('g_loss', train_ops.g_loss)]
    if loss.r1_penalty is not None:
        items.append(tf.summary.scalar('r1_penalty', loss.r1_penalty))
    if image_summary:
        items.append(tf.summary.image('G', model.fake, max_outputs=8))
    return tf.summary.merge(items)


def sample_inputs(config, cfg):
    """Fixed latents (and labels) of the sample grids: batch_size rows; for MNIST ten rows, one per digit."""
    import utils
    rng = np.random.RandomState(config.seed)
    if not cfg.y_dim:
        return utils.latents(rng, config.batch_size, cfg.z_dim, config.z_dist), None
    cols = max(1, int(math.ceil(config.batch_size / 10.0)))
    labels = utils.class_rows_labels(10, cols)
    return utils.latents(rng, len(labels), cfg.z_dim, config.z_dist), utils.one_hot(labels)


def npu_options(config):
    import npu
    run_dir = config.run_dir
    return dict(iterations_per_loop=config.iterations_per_loop, over_dump=config.over_dump,
                over_dump_path=config.over_dump_path or os.path.join(run_dir, 'overflow'),
                profiling=config.profiling,
                profiling_options=config.profiling_options or npu.default_profiling_options(
                    os.path.abspath(os.path.join(run_dir, 'profiling'))))


# ---- entry point ---------------------------------------------------------------------------------------
def run_settings(config, world_size):
    """The run's config.json: every flag as resolved (device: the one chosen) and what main() found for it."""
    from tf_compat import tf
    settings = dict((name, getattr(config, name)) for name in FLAG_NAMES)
    settings.update(train_size=str(config.train_size), precision=config.precision.compute,
                    tf_version=tf.__version__, run_dir=config.run_dir, conditional=config.conditional,
                    world_size=world_size)
    if config.channels:
        settings['channels'] = config.channels
    return settings


def trained_config(options, device, precision, run_dir, saved):
    """The RunConfig of the post-training modes of a trained run: labels and channels as its config.json
    (saved; {} when there is none) records them, else as the flags say."""
    if 'conditional' in saved:
        conditional = bool(saved['conditional'])
    else:  # saved before config.json held it: MNIST was the one data set with labels
        conditional = saved.get('dataset', options.dataset) == 'mnist'
    channels = saved.get('channels') or options.c_dim or (1 if options.dataset == 'mnist' else 3)
    return options._replace(device=device, precision=precision, run_dir=run_dir, conditional=conditional,
                            channels=channels, image_spec=None if conditional else image_spec(options, channels))


def prepare_mode(config):
    import data
    if config.dataset == 'mnist':
        open_dataset(config)  # checks that the files are there
        print('MNIST needs no preparation: training reads the idx files directly.')
        return 0
    dataset = open_dataset(config, use_prepared=False)
    paths, spec = dataset.source.paths, dataset.spec
    existing = data.find_prepared(config.data_dir, config.dataset, spec, paths)
    if existing:
        print('already prepared: %s (%d files, %s).' % (existing, len(paths), spec.key()))
        return 0
    path, skipped = data.prepare(config.data_dir, config.dataset, spec, paths)
    print('prepared %d images into %s%s; training with the same --crop/--input_height/--output_height '
          'reads it.' % (len(paths) - skipped, path, ' (%d unreadable files left out)' % skipped if skipped else ''))
    return 0


def report(error):
    """The one sentence of a failed run, on stderr."""
    print('main.py: error: %s' % error, file=sys.stderr)


def main(argv=None):
    try:
        flags = parse_flags(argv)
        options = resolve_flags(flags)
        validate_numbers(options)
        if options.prepare:
            return prepare_mode(options)
        import devices
        try:
            device = devices.choose_device(options.device)
            precision = devices.choose_precision(device, options.precision_mode)
        except devices.DeviceError as error:
            raise UsageError(str(error))
        if options.iterations_per_loop > 1 and device != 'npu':
            raise UsageError('--iterations_per_loop offloads steps to an Ascend NPU; on %s use 1.' % device)
        run_dir = run_dir_of(options)
        if options.train:
            dataset = open_dataset(options)
            if data_steps(options, dataset) < 1:
                raise UsageError('the data set has %d images (--train_size %s), fewer than one batch of %d: '
                                 'lower --batch_size.' % (len(dataset.source), options.train_size, options.batch_size))
            init_checkpoint = resolve_checkpoint(options.init_checkpoint)
            if options.init_checkpoint and not init_checkpoint:
                raise UsageError('--init_checkpoint %s: no checkpoint there.' % options.init_checkpoint)
            ranks = data_parallel_ranks(options, device, dataset, run_dir)
            config = options._replace(device=device, precision=precision, run_dir=run_dir,
                                      init_checkpoint=init_checkpoint, conditional=dataset.conditional,
                                      channels=dataset.channels, image_spec=dataset.spec)
        else:
            check_trained_run(options, run_dir)
        chief = not options.train or ranks.is_chief  # ranks other than 0 write only to their stdout
        if chief:
            claim_run_folder(options, run_dir)
    except UsageError as error:
        report(error)
        return 2

    from tf_compat import tf
    import evaluate
    import runs
    log_file = runs.tee_output(run_dir) if chief else sys.stdout
    try:
        print('run folder %s | device %s | precision %s%s | TensorFlow %s%s' % (
            run_dir, device, precision.compute, ' (%s)' % precision.note if precision.note else '',
            tf.__version__, ' | %s' % ranks.describe() if options.train and ranks.distributed else ''))
        if options.train:
            if chief:
                runs.save_config(run_dir, run_settings(config, ranks.size))
            return train(config, dataset, ranks)
        import inference
        trained_with = inference.saved_config(run_dir)
        return inference.run_modes(trained_config(options, device, precision, run_dir, trained_with), trained_with)
    except TrainingDiverged as error:
        report(error)
        return 1
    except runs.RunError as error:  # unreadable or mismatched checkpoints (2), a full disk (1)
        report(error)
        return error.exit_status
    except evaluate.EvaluationError as error:  # found once the run's log is open (e.g. FID without Inception)
        report(error)
        return 2
    finally:
        sys.stdout.flush()
        log_file.flush()


def data_parallel_ranks(config, device, dataset, run_dir):
    """The ranks of this training job (distributed.Context, one rank unless TF_CONFIG or RANK_SIZE say
    otherwise), checked against the data and against the world size of the run being resumed."""
    import data
    import distributed
    import runs
    if not config.collective_timeout > 0:
        raise UsageError('--collective_timeout must be positive, got %s.' % config.collective_timeout)
    try:
        ranks = distributed.from_environment(device, config.collective_timeout)
    except distributed.DistributedError as error:
        raise UsageError(str(error))
    trained_on = runs.world_size(run_dir)
    if runs.latest_checkpoint(os.path.join(run_dir, config.checkpoint_dir)) and trained_on != ranks.size:
        raise UsageError('the run in %s was trained on %d rank(s) and this job has %d: a run resumes only with '
                         'its own world size (its data order is per global batch); start a new run with '
                         'another --out_name.' % (run_dir, trained_on, ranks.size))
    if not ranks.distributed:
        return ranks
    global_batch = config.batch_size * ranks.size
    if data.batches_per_epoch(len(dataset.source), global_batch, config.train_size) < 1:
        raise UsageError('the data set has %d images (--train_size %s), fewer than one global batch of %d '
                         '(--batch_size %d on each of %d ranks): lower --batch_size.'
                         % (len(dataset.source), config.train_size, global_batch, config.batch_size, ranks.size))

    def fail_job(sentence):  # the watchdog's report: the job cannot go on, and this rank ends now
        report(sentence)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    ranks.on_failure = fail_job
    return ranks


def data_steps(config, dataset):
    import data
    return data.batches_per_epoch(len(dataset.source), config.batch_size, config.train_size)


def resolve_checkpoint(path):
    """Checkpoint path prefix from a folder (its newest checkpoint) or a prefix; '' when none is there."""
    from runs import latest_checkpoint
    if not path:
        return ''
    if os.path.isdir(path):
        return latest_checkpoint(path) or ''
    return path if os.path.isfile(path + '.index') else ''


def claim_run_folder(config, run_dir):
    """Before anything is written: the run folder (and for training its checkpoint folder) can be created
    and written to, and no other process trains in it (a lock held until this process ends)."""
    import runs
    if os.path.exists(config.out_dir) and not os.path.isdir(config.out_dir):
        raise UsageError('--out_dir %s is a file, not a folder.' % config.out_dir)
    try:
        runs.check_writable(run_dir)
        if config.train:
            runs.check_writable(os.path.join(run_dir, config.checkpoint_dir), 'checkpoint folder')
            runs.lock_run(run_dir)
    except runs.RunError as error:
        raise UsageError(str(error))


def check_trained_run(config, run_dir):
    """UsageError naming the folder searched, and the runs that do have checkpoints, when there is none."""
    import runs
    if runs.latest_checkpoint(os.path.join(run_dir, config.checkpoint_dir)):
        return
    others = runs.runs_with_checkpoints(config.out_dir, config.checkpoint_dir)
    listing = ('runs with checkpoints in %s: %s (select one with --out_name, or repeat its settings)'
               % (config.out_dir, ', '.join(others))) if others else 'no run in %s has one yet' % config.out_dir
    raise UsageError('no checkpoint in %s: train first with the same flags plus --train; %s.'
                     % (os.path.join(run_dir, config.checkpoint_dir), listing))


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # a second Ctrl-C during training, or Ctrl-C in another mode
        print('\ninterrupted; the last checkpoint written is kept.', file=sys.stderr)
        sys.exit(130)
