"""Data-parallel ranks: how many, which one is this, averaging gradients and broadcasting variables.

One process per device. On Ascend NPUs the ranks meet over HCCL (npu_bridge; RANK_SIZE, RANK_ID and
RANK_TABLE_FILE as the ModelZoo scripts set them); on GPUs and CPUs over TensorFlow's collective ops
between one tf.train.Server per worker, described by the standard TF_CONFIG variable (as a Kubeflow
TFJob or tools/launch.py sets it). At one rank every function here is the identity and the graph is
the single-device graph.

Every rank must run the same collectives in the same steps: the graph is built in the same order on
each (so the collective keys match), every sess.run that runs collectives carries the same graph key
(run_options), and a watchdog ends a rank whose collective waits longer than the timeout.
"""
import collections
import hashlib
import json
import os
import socket
import sys
import threading
import time

from tf_compat import tf
from tensorflow.python.ops import gen_resource_variable_ops

GROUP_KEY = 1  # one group: all ranks
GRAPH_KEY = 20  # RunOptions.experimental.collective_graph_key of every run with collectives (> 0)
DEFAULT_TIMEOUT = 300.0  # seconds a collective may wait for the other ranks
ALL_ANSWER = "every rank's server still answers, so one of them hangs"
PROBE_AFTER = 5.0  # seconds of waiting after which the watchdog checks that the other ranks' servers answer


class DistributedError(Exception):
    """A cluster description or rank setting that cannot work (one sentence for the user)."""


# ---- cluster descriptions ------------------------------------------------------------------------------
Cluster = collections.namedtuple('Cluster', [
    'addresses',  # host:port of every rank, in rank order
    'jobs',  # (job name, task index) of every rank, in rank order
    'rank',  # this process's rank
])


def parse_tf_config(text):
    """The Cluster of a TF_CONFIG value ({"cluster": {"worker": [...]}, "task": {"type": "worker",
    "index": i}}); a "chief" job, where present, is rank 0 and the workers follow. None for ''."""
    if not text or not text.strip():
        return None
    try:
        config = json.loads(text)
    except ValueError as error:
        raise DistributedError('TF_CONFIG is not valid JSON (%s).' % error)
    if not isinstance(config, dict) or not isinstance(config.get('cluster'), dict):
        raise DistributedError('TF_CONFIG has no "cluster" object: expected {"cluster": {"worker": '
                               '["host:port", ...]}, "task": {"type": "worker", "index": 0}}.')
    cluster, task = config['cluster'], config.get('task') or {}
    unknown = sorted(set(cluster) - {'chief', 'worker', 'evaluator'})
    if unknown:
        raise DistributedError('TF_CONFIG\'s cluster has job %s; data-parallel training uses only "chief" '
                               'and "worker" tasks.' % ', '.join(unknown))
    jobs, addresses = [], []
    for job in ('chief', 'worker'):
        tasks = cluster.get(job) or []
        if job == 'chief' and len(tasks) > 1:
            raise DistributedError('TF_CONFIG lists %d chief tasks; there can be one.' % len(tasks))
        for index, address in enumerate(tasks):
            if not isinstance(address, str) or ':' not in address:
                raise DistributedError('TF_CONFIG\'s %s task %d address %r is not host:port.'
                                       % (job, index, address))
            jobs.append((job, index))
            addresses.append(address)
    if not jobs:
        raise DistributedError('TF_CONFIG\'s cluster lists no chief or worker task.')
    here = (task.get('type'), task.get('index', 0))
    if here not in jobs:
        raise DistributedError('TF_CONFIG\'s task %s %s is not in its cluster (%s).'
                               % (here[0], here[1], ', '.join('%s %d' % j for j in jobs)))
    return Cluster(addresses, jobs, jobs.index(here))


RankEntry = collections.namedtuple('RankEntry', 'rank_id server_id device_id device_ip')


def parse_rank_table(table):
    """The ranks of an HCCL rank table (a dict, or the path of its JSON file), sorted by rank_id.

    Format of the Ascend ModelZoo scripts' configs/rank_table_8p.json: "server_count", "server_list"
    [{"server_id", "device": [{"device_id", "device_ip", "rank_id"}, ...]}], "status", "version"; all
    values are strings. Rank ids must be 0..N-1, each once."""
    if not isinstance(table, dict):
        try:
            with open(table) as f:
                table = json.load(f)
        except (OSError, ValueError) as error:
            raise DistributedError('cannot read the rank table %s (%s).' % (table, error))
    servers = table.get('server_list')
    if not isinstance(servers, list) or not servers:
        raise DistributedError('the rank table has no "server_list".')
    entries = []
    for server in servers:
        for device in server.get('device') or []:
            try:
                entries.append(RankEntry(int(device['rank_id']), str(server.get('server_id', '')),
                                         int(device['device_id']), str(device.get('device_ip', ''))))
            except (KeyError, ValueError, TypeError):
                raise DistributedError('a device of server %s in the rank table lacks a numeric device_id '
                                       'or rank_id.' % server.get('server_id', '?'))
    entries.sort(key=lambda e: e.rank_id)
    if [e.rank_id for e in entries] != list(range(len(entries))):
        raise DistributedError('the rank table\'s rank_id values are %s; they must be 0 to %d, each once.'
                               % (sorted(e.rank_id for e in entries), len(entries) - 1))
    count = table.get('server_count')
    if count is not None and str(count) != str(len(servers)):
        raise DistributedError('the rank table says server_count %s but lists %d servers.' % (count, len(servers)))
    return entries


# ---- the context -------------------------------------------------------------------------------------
class Context(object):
    """The ranks of this job as one object: size, rank, and the collectives of its engine ('single': one
    rank; 'collective': TensorFlow collectives between tf.train.Servers; 'hccl': npu_bridge's HCCL)."""

    def __init__(self, engine='single', size=1, rank=0, cluster=None, timeout=DEFAULT_TIMEOUT, device='cpu'):
        self.engine, self.size, self.rank, self.cluster = engine, size, rank, cluster
        self.device_type = 'GPU' if device == 'gpu' else 'CPU'
        self.timeout = float(timeout)
        self.is_chief = rank == 0
        self._server = None
        self._next_key = 1
        self._watch = None
        self._progress, self._progress_ready = None, False  # steps this rank has started (see blame)

    @property
    def distributed(self):
        return self.size > 1

    def describe(self):
        if not self.distributed:
            return 'one rank'
        where = {'collective': 'TensorFlow collectives', 'hccl': 'HCCL'}[self.engine]
        return 'rank %d of %d (%s)' % (self.rank, self.size, where)

    def rank_seed(self, seed):
        """The graph seed of this rank: --seed on rank 0, so latents differ per rank while a one-rank run
        keeps its seed (variables are broadcast from rank 0, so their initial draw does not matter)."""
        return seed + 1000003 * self.rank

    # ---- session
    def session_config(self, config):
        """The device's session config, completed for the collectives of this engine."""
        if self.engine != 'collective':
            return config
        job, index = self.cluster.jobs[self.rank]
        config.experimental.collective_group_leader = '/job:%s/replica:0/task:%d' % self.cluster.jobs[0]
        del config.device_filters[:]
        config.device_filters.append('/job:%s/task:%d' % (job, index))
        return config

    def session_target(self, config):
        """'' (in-process) at one rank and on HCCL; else this worker's tf.train.Server, started once."""
        if self.engine != 'collective':
            return ''
        if self._server is None:
            job, index = self.cluster.jobs[self.rank]
            spec = {}
            for (name, _), address in zip(self.cluster.jobs, self.cluster.addresses):
                spec.setdefault(name, []).append(address)
            self._server = tf.train.Server(tf.train.ClusterSpec(spec), job_name=job, task_index=index,
                                           config=config, start=True)
        return self._server.target

    def run_options(self):
        """RunOptions for sess.run calls that run collectives; None where none is needed."""
        if self.engine != 'collective':
            return None
        options = tf.RunOptions()
        options.experimental.collective_graph_key = GRAPH_KEY
        return options

    # ---- collectives
    def _instance_key(self):
        key, self._next_key = self._next_key, self._next_key + 1
        return key

    def all_reduce(self, tensor, mean=True):
        """Sum (mean=False) or mean over the ranks of a float tensor; the tensor itself at one rank."""
        if not self.distributed:
            return tensor
        if self.engine == 'hccl':
            from npu_bridge.npu_init import hccl_ops
            total = hccl_ops.allreduce(tensor, 'sum')
            return total / float(self.size) if mean else total
        from tensorflow.python.ops import collective_ops
        with tf.device(self.collective_device()):
            tensor = tf.identity(tensor)  # TensorFlow 1.15 wants the input placed too
            return collective_ops.all_reduce(tensor, self.size, GROUP_KEY, self._instance_key(),
                                             merge_op='Add', final_op='Div' if mean else 'Id')

    def collective_device(self):
        """This rank's device, which TensorFlow's collective ops must be placed on explicitly."""
        job, index = self.cluster.jobs[self.rank]
        return '/job:%s/replica:0/task:%d/device:%s:0' % (job, index, self.device_type)

    def all_reduce_flat(self, tensors, mean=True):
        """all_reduce of several float tensors of one dtype as one buffer (one collective, not one each)."""
        if not self.distributed or not tensors:
            return list(tensors)
        flat = tf.concat([tf.reshape(t, [-1]) for t in tensors], 0)
        reduced = self.all_reduce(flat, mean)
        sizes = [t.get_shape().num_elements() for t in tensors]
        return [tf.reshape(part, tf.shape(t)) for part, t in zip(tf.split(reduced, sizes), tensors)]

    def average_gradients(self, grads_and_vars):
        """(gradient, variable) pairs with each gradient the mean over the ranks, one buffer per dtype."""
        if not self.distributed:
            return grads_and_vars
        pairs = [(tf.convert_to_tensor(g) if g is not None else None, v) for g, v in grads_and_vars]
        out = list(pairs)
        by_dtype = collections.OrderedDict()
        for i, (g, _) in enumerate(pairs):
            if g is not None:
                by_dtype.setdefault(g.dtype.base_dtype.name, []).append(i)
        for dtype in sorted(by_dtype):  # sorted: the same key order on every rank
            indices = by_dtype[dtype]
            with tf.name_scope('average_gradients'):
                reduced = self.all_reduce_flat([pairs[i][0] for i in indices])
            for i, g in zip(indices, reduced):
                out[i] = (g, pairs[i][1])
        return out

    def optimizer_wrapper(self, device_wrapper=None):
        """wrap_optimizer for model.build_train_ops: gradients averaged over the ranks inside the device's
        own wrapper (loss scaling then sees the averaged gradients, the same on every rank). HCCL: the
        NPU wrapper (npu.wrap_optimizer) does the averaging itself."""
        if not self.distributed or self.engine == 'hccl':
            return device_wrapper
        outer = device_wrapper or (lambda optimizer: optimizer)
        return lambda optimizer: outer(AveragingOptimizer(optimizer, self))

    def sync_after(self, step_op, variables):
        """step_op followed by replacing each of `variables` by its mean over the ranks (batch-norm moving
        statistics, which each rank moves towards its own batch's). step_op itself at one rank."""
        if not self.distributed or not variables:
            return step_op
        with tf.control_dependencies([step_op]), tf.name_scope('average_moving_statistics'):
            means = self.all_reduce_flat([v.read_value() for v in variables])
            return tf.group(*[v.assign(m) for v, m in zip(variables, means)])

    def broadcast_op(self, variables):
        """An op setting every variable to rank 0's value (None at one rank): run once after the
        variables are initialised or restored, before the first step."""
        if not self.distributed:
            return None
        if self.engine == 'hccl':
            import npu
            return npu.broadcast_variables(variables)
        from tensorflow.python.ops import collective_ops
        groups = collections.OrderedDict()
        for v in variables:
            groups.setdefault(v.dtype.base_dtype.name, []).append(v)
        assigns = []
        with tf.name_scope('broadcast_variables'), tf.device(self.collective_device()):
            for dtype in sorted(groups):
                group = groups[dtype]
                values = [v.read_value() for v in group]
                flat = tf.concat([tf.reshape(t, [-1]) for t in values], 0)
                wire = flat if flat.dtype.is_floating else tf.cast(flat, tf.float64)  # steps: exact in float64
                shape, key = wire.get_shape(), self._instance_key()
                if self.is_chief:  # rank 0 sends and keeps its own values
                    send = collective_ops.broadcast_send(wire, shape, wire.dtype, self.size, GROUP_KEY, key)
                    with tf.control_dependencies([send]):
                        received = tf.identity(wire)
                else:
                    received = collective_ops.broadcast_recv(shape, wire.dtype, self.size, GROUP_KEY, key)
                received = tf.cast(received, flat.dtype)
                sizes = [v.get_shape().num_elements() for v in group]
                for v, part in zip(group, tf.split(received, sizes)):
                    assigns.append(v.assign(tf.reshape(part, v.get_shape())))
        return tf.group(*assigns)

    # ---- agreement on each step, and the watchdog
    def step_agreement(self, d_loss, g_loss):
        """StepAgreement of this job: the ranks' mean losses and whether any rank asked to stop."""
        return StepAgreement(self, d_loss, g_loss)

    def run(self, sess, fetches, feed_dict=None, what='a training step', patient=False):
        """sess.run of fetches that hold collectives, under the watchdog: when the other ranks do not
        take part within the timeout (patient: while the other ranks' servers still answer, as when rank
        0 evaluates), or the runtime reports a lost peer, on_failure gets a sentence naming the rank."""
        if not self.distributed:
            return sess.run(fetches, feed_dict)
        if self._progress is not None and not self._progress_ready:
            sess.run(self._progress.initializer)
            self._progress_ready = True
        watch = self._watchdog()
        watch.begin(what, patient)
        try:
            return sess.run(fetches, feed_dict, options=self.run_options())
        except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
                tf.errors.CancelledError, tf.errors.InternalError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            watch.fail('%s failed on rank %d: %s (%s).' % (what, self.rank, self.blame(True), first[:200]))
        finally:
            watch.end()

    def blame(self, name_hung=False):
        """A phrase naming the ranks whose servers no longer answer; when all answer, with name_hung, the
        ranks that have not started the step this rank waits in (their step counters are behind)."""
        if self.engine != 'collective':
            return 'another rank stopped or hangs (HCCL names it in the device log)'
        lost = [rank for rank, address in enumerate(self.cluster.addresses)
                if rank != self.rank and not _answers(address)]
        if lost:
            return ' and '.join('rank %d (%s)' % (r, self.cluster.addresses[r]) for r in lost) + \
                (' is' if len(lost) == 1 else ' are') + ' gone'
        behind = self.ranks_behind() if name_hung else []
        if behind:
            return ' and '.join('rank %d (%s)' % (r, self.cluster.addresses[r]) for r in behind) + \
                (' hangs: its server answers but it has' if len(behind) == 1 else
                 ' hang: their servers answer but they have') + ' not started this step'
        return ALL_ANSWER

    def ranks_behind(self):
        """Ranks whose count of started steps is below this rank's, read from their servers (a rank whose
        Python hangs still serves its variables); [] when that cannot be told."""
        if self._progress is None or self._server is None:
            return []
        name = self._progress.handle.op.get_attr('shared_name')
        graph = tf.Graph()
        with graph.as_default():
            reads = []
            for job, index in self.cluster.jobs:
                with tf.device('/job:%s/replica:0/task:%d/device:CPU:0' % (job, index)):
                    handle = gen_resource_variable_ops.var_handle_op(tf.int64, [], shared_name=name)
                    reads.append(gen_resource_variable_ops.read_variable_op(handle, tf.int64))
        config = tf.ConfigProto(operation_timeout_in_ms=int(PROBE_AFTER * 1000))
        try:
            with tf.Session(self._server.target, graph=graph, config=config) as sess:
                counts = sess.run(reads)
        except tf.errors.OpError:
            return []
        return [rank for rank, count in enumerate(counts) if count < counts[self.rank]]

    on_failure = None  # function(sentence) that reports and ends the process; set by main.py

    def _watchdog(self):
        if self._watch is None:
            self._watch = Watchdog(self)
        return self._watch

    # ---- checks
    def digest(self, sess, variables):
        """SHA-1 of the values of variables (in name order): equal on every rank when they agree."""
        values = sess.run(variables)
        digest = hashlib.sha1()
        for name, value in sorted(zip([v.op.name for v in variables], values)):
            digest.update(name.encode('utf-8'))
            digest.update(memoryview(value).tobytes() if hasattr(value, 'tobytes') else repr(value).encode())
        return digest.hexdigest()


def _answers(address, timeout=2.0):
    """True when a TCP connection to host:port opens (the rank's server process is alive)."""
    host, port = address.rsplit(':', 1)
    try:
        with socket.create_connection((host.strip('[]'), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class StepAgreement(object):
    """One all-reduce per step of [d_loss, g_loss, stop]: every rank logs the mean losses, sees the same
    divergence, and stops after the same step when any rank got SIGINT/SIGTERM (otherwise the others
    would wait for it in the next step's collectives). At one rank: the losses and the local request."""

    def __init__(self, context, d_loss, g_loss):
        self.context = context
        if not context.distributed:
            self.fetches, self.stop = [d_loss, g_loss], None
            return
        self.stop = tf.placeholder_with_default(tf.constant(0.0), [], name='stop_requested')
        values = tf.stack([tf.cast(d_loss, tf.float32), tf.cast(g_loss, tf.float32), self.stop])
        with tf.name_scope('step_agreement'):
            total = context.all_reduce(values, mean=False)
        self.fetches = [total[0] / context.size, total[1] / context.size, total[2]]
        if context.engine == 'collective':  # counts the steps this rank has started, for Context.blame
            with tf.device(context.collective_device()):
                context._progress = tf.Variable(tf.constant(0, tf.int64), name='started_steps', trainable=False,
                                                collections=[], use_resource=True)
            self.fetches.append(context._progress.assign_add(1))

    def feed(self, stop_requested):
        return {self.stop: 1.0 if stop_requested else 0.0} if self.stop is not None else None

    def read(self, results, stop_requested):
        """(d_loss, g_loss, stop) from the fetched values."""
        d_loss, g_loss = float(results[0]), float(results[1])
        stop = float(results[2]) > 0 if self.stop is not None else stop_requested
        return d_loss, g_loss, stop


class Watchdog(object):
    """A thread that ends the process when a guarded sess.run waits longer than the timeout (TensorFlow
    1.15's collectives have no timeout of their own; one mechanism serves both runtimes and HCCL)."""

    def __init__(self, context, poll=1.0):
        self.context, self.poll = context, poll
        self.lock = threading.Lock()
        self.started, self.what, self.patient = None, '', False
        self.met = False  # True after the first guarded run: every rank's server was up then
        thread = threading.Thread(target=self._watch, name='collective-watchdog', daemon=True)
        thread.start()

    def begin(self, what, patient):
        with self.lock:
            self.started, self.what, self.patient = time.time(), what, patient

    def end(self):
        with self.lock:
            self.started, self.met = None, True

    def fail(self, sentence):
        handler = self.context.on_failure or _default_failure
        handler(sentence)

    def _watch(self):
        probed = 0.0
        while True:
            time.sleep(self.poll)
            with self.lock:
                started, what, patient = self.started, self.what, self.patient
            if started is None:
                continue
            waited = time.time() - started
            # Once the ranks have met, a rank whose server is gone is found by probing, before the timeout.
            early = self.met and waited >= PROBE_AFTER and time.time() - probed >= PROBE_AFTER
            if waited < self.context.timeout and not early:
                continue
            probed = time.time()
            blame = self.context.blame()
            alive = blame == ALL_ANSWER or self.context.engine != 'collective'
            if waited < self.context.timeout and alive:
                continue
            if patient and alive:
                with self.lock:  # rank 0 is still busy (evaluating) and answers: wait another period
                    if self.started == started:
                        self.started = time.time()
                continue
            if alive:
                blame = self.context.blame(name_hung=True)
            if waited < self.context.timeout:
                self.fail('%s on rank %d could not finish: %s.' % (what, self.context.rank, blame))
            else:
                self.fail('%s on rank %d waited %.0f s for the other ranks (--collective_timeout): %s.'
                          % (what, self.context.rank, waited, blame))


def _default_failure(sentence):
    print('error: %s' % sentence, file=sys.stderr)
    sys.stderr.flush()
    os._exit(1)


# ---- from the environment ------------------------------------------------------------------------------
def from_environment(device, timeout=DEFAULT_TIMEOUT, environ=None):
    """The Context of this process: HCCL from RANK_SIZE/RANK_ID on the NPU; TensorFlow collectives from
    TF_CONFIG on GPU and CPU; one rank when neither describes more than one."""
    environ = os.environ if environ is None else environ
    rank_size = environ.get('RANK_SIZE', '').strip() or '1'
    try:
        size = int(rank_size)
    except ValueError:
        raise DistributedError('RANK_SIZE must be a whole number, got %r.' % rank_size)
    if device == 'npu':
        if size <= 1:
            return Context(timeout=timeout)
        rank_text = environ.get('RANK_ID', '').strip()
        if not rank_text.isdigit() or int(rank_text) >= size:
            raise DistributedError('RANK_SIZE=%d needs RANK_ID between 0 and %d, got %r.'
                                   % (size, size - 1, rank_text))
        table = environ.get('RANK_TABLE_FILE', '')
        if table:
            entries = parse_rank_table(table)
            if len(entries) != size:
                raise DistributedError('RANK_SIZE=%d but the rank table %s lists %d ranks.'
                                       % (size, table, len(entries)))
        return Context('hccl', size, int(rank_text), timeout=timeout)
    cluster = parse_tf_config(environ.get('TF_CONFIG', ''))
    if cluster is None or len(cluster.addresses) == 1:
        if size > 1:
            raise DistributedError('RANK_SIZE=%d asks for %d ranks, but on %s the ranks meet over TensorFlow '
                                   'collectives described by TF_CONFIG, which %s.'
                                   % (size, size, device, 'is not set' if cluster is None else 'lists one task'))
        return Context(timeout=timeout)
    if size > 1 and size != len(cluster.addresses):
        raise DistributedError('RANK_SIZE=%d but TF_CONFIG lists %d tasks.' % (size, len(cluster.addresses)))
    return Context('collective', len(cluster.addresses), cluster.rank, cluster, timeout, device)


class AveragingOptimizer(tf.train.Optimizer):
    """An optimizer whose compute_gradients returns the gradients averaged over the ranks (the rest is
    the wrapped optimizer's)."""

    def __init__(self, optimizer, context):
        super(AveragingOptimizer, self).__init__(use_locking=False, name=optimizer.get_name())
        self._optimizer, self._context = optimizer, context

    def compute_gradients(self, *args, **kwargs):
        return self._context.average_gradients(self._optimizer.compute_gradients(*args, **kwargs))

    def apply_gradients(self, *args, **kwargs):
        return self._optimizer.apply_gradients(*args, **kwargs)

    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self, *args, **kwargs):
        return self._optimizer.variables(*args, **kwargs)
