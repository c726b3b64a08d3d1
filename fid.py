"""FID, KID and precision/recall of RGB samples: the frozen Inception graph (Heusel et al. 2017, TTUR code)
and the cached statistics of a data set."""
import collections
import os
import time

import numpy as np

from tf_compat import tf

from download import INCEPTION
from metrics import (OwnSession, feature_stats, frechet_distance, kernel_inception_distance, precision_recall,
                     session_config)

# The frozen Inception-v3 graph of the FID papers (Heusel et al. 2017, TTUR code): where it comes from and
# what it is called are download.py's (which fetches it and checks it holds the nodes below).
INCEPTION_URL = INCEPTION['url']
INCEPTION_GRAPH_FILE = INCEPTION['graph_file']
# input: the decoded image with its batch dimension, [1, H, W, 3] in [0, 255]; output: [N, 1, 1, 2048]
INCEPTION_INPUT, INCEPTION_OUTPUT = (node + ':0' for node in INCEPTION['required_nodes'])
INCEPTION_SIZE = 299  # the graph resizes its input to 299x299 (bilinear); it is fed at that size


def default_inception_path(data_dir):
    """Where the frozen Inception graph is looked for: <data_dir>/inception-2015-12-05/classify_image_graph_def.pb."""
    return os.path.join(data_dir, INCEPTION['folder'], INCEPTION_GRAPH_FILE)


def accept_any_batch(graph_def):
    """Rewrites recorded output shapes with a batch dimension of 1 to an unknown batch dimension.

    The graph was frozen for one image at a time; the TTUR code patches the same shapes after import
    so that batches flow through. Done on the GraphDef, this works on TF 1.15 and 2.x alike.
    """
    for node in graph_def.node:
        if '_output_shapes' in node.attr:
            for shape in node.attr['_output_shapes'].list.shape:
                if len(shape.dim) and shape.dim[0].size == 1:
                    shape.dim[0].size = -1
    return graph_def


class InceptionFeatures(OwnSession):
    """The frozen Inception graph in its own tf.Graph and Session: pool_3 features [N, 2048] of images.

    Batches of images are resized to 299x299 (bilinear, as the graph's own resize op) in [0, 255] and fed
    in place of the graph's ExpandDims output, the batch-friendly input of the TTUR FID code.
    """

    def __init__(self, graph_path, batch_size=50):
        if not os.path.isfile(graph_path):
            raise IOError('%s not found: run `python download.py inception`, or download %s and extract %s.'
                          % (graph_path, INCEPTION_URL, INCEPTION_GRAPH_FILE))
        graph_def = tf.GraphDef()
        with open(graph_path, 'rb') as f:
            graph_def.ParseFromString(f.read())
        accept_any_batch(graph_def)
        self.batch_size = batch_size
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.placeholder(tf.float32, [None, None, None, 3], name='images')  # [0, 255]
            resized = tf.image.resize_bilinear(self.images, [INCEPTION_SIZE, INCEPTION_SIZE], align_corners=False)
            pool3, = tf.import_graph_def(graph_def, input_map={INCEPTION_INPUT: resized},
                                         return_elements=[INCEPTION_OUTPUT], name='inception')
            self.features_op = tf.reshape(pool3, [tf.shape(pool3)[0], -1])  # N, 2048
        self.graph.finalize()
        self.sess = tf.Session(graph=self.graph, config=session_config())

    def features(self, images_u8):
        """float64 features [N, D] of uint8 images [N, H, W, 1 or 3] (grayscale is repeated to RGB)."""
        images_u8 = np.asarray(images_u8)
        if images_u8.dtype != np.uint8 or images_u8.ndim != 4 or images_u8.shape[-1] not in (1, 3):
            raise ValueError('expected uint8 images [N, H, W, 1 or 3], got %s %s' % (images_u8.dtype, images_u8.shape))
        parts = []
        for start in range(0, len(images_u8), self.batch_size):
            batch = images_u8[start:start + self.batch_size].astype(np.float32)
            if batch.shape[-1] == 1:
                batch = np.repeat(batch, 3, axis=-1)
            parts.append(self.sess.run(self.features_op, {self.images: batch}))
        if not parts:
            raise ValueError('no images to compute features of')
        return np.concatenate(parts).astype(np.float64)



def fid_stats_path(data_dir, dataset, key):
    """Cache of a data set's reference statistics: <data_dir>/<dataset>_prepared/fid_stats_<key>.npz."""
    return os.path.join(data_dir, dataset + '_prepared', 'fid_stats_%s.npz' % key)


ReferenceStats = collections.namedtuple('ReferenceStats', 'mu sigma kid_features images')


def reference_stats(extractor, images, cache_path, max_images=50000, kid_images=10000, seed=0, log=print):
    """ReferenceStats of a data set's uint8 images [N, H, W, C] (an array or np.load(..., mmap_mode='r')),
    computed once from up to max_images of them (a seeded sample) and cached at cache_path (.npz).

    kid_features keeps the features of up to kid_images of them for KID. A cache made from another
    number of images is computed again.
    """
    if os.path.isfile(cache_path):
        with np.load(cache_path) as cached:
            if int(cached['images']) == len(images):
                return ReferenceStats(cached['mu'], cached['sigma'], cached['kid_features'], int(cached['images']))
        log('note: %s was made from another number of images; computing it again.' % cache_path)
    rng = np.random.RandomState(seed)
    picked = np.arange(len(images))
    if len(images) > max_images:
        picked = np.sort(rng.choice(len(images), max_images, replace=False))
    log('computing reference features of %d images for FID (once; cached in %s)' % (len(picked), cache_path))
    start, parts, chunk = time.time(), [], 1000
    for offset in range(0, len(picked), chunk):
        parts.append(extractor.features(np.asarray(images[picked[offset:offset + chunk]])))
    features = np.concatenate(parts)
    mu, sigma = feature_stats(features)
    kid_features = features[np.sort(rng.permutation(len(features))[:kid_images])].astype(np.float32)
    os.makedirs(os.path.dirname(os.path.abspath(cache_path)), exist_ok=True)
    tmp = cache_path + '.tmp.npz'  # np.savez keeps a name ending in .npz as it is
    np.savez(tmp, mu=mu, sigma=sigma, kid_features=kid_features, images=len(images))
    os.replace(tmp, cache_path)
    log('reference features done in %.0f s' % (time.time() - start))
    return ReferenceStats(mu, sigma, kid_features, len(images))


def fid_and_kid(extractor, generated_u8, reference, kid_subsets=100, kid_subset_size=1000, seed=0):
    """FID, KID, precision and recall of generated uint8 images against ReferenceStats, as a dict: fid, kid,
    kid_std, precision, recall, their real-data floors, n.

    Precision and recall compare as many generated images as half the kept reference features hold
    against that half; their floors compare the two halves, real against real at the same size.
    """
    features = extractor.features(generated_u8)
    fid = frechet_distance(*(feature_stats(features) + (reference.mu, reference.sigma)))
    kid, kid_std = kernel_inception_distance(features, reference.kid_features, kid_subsets, kid_subset_size, seed)
    half = len(reference.kid_features) // 2
    first, second = reference.kid_features[:half], reference.kid_features[half:2 * half]
    precision, recall = precision_recall(first, features[:half])
    precision_floor, recall_floor = precision_recall(first, second)
    return {'fid': fid, 'kid': kid, 'kid_std': kid_std, 'precision': precision, 'recall': recall,
            'precision_floor': precision_floor, 'recall_floor': recall_floor, 'n': len(features)}
