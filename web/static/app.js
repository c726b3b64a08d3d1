/* The DCGAN runs page: lists runs, shows one run's timeline, losses and files, and polls while a run trains. */
'use strict';

(function () {
  var POLL_LIVE_MS = 2000;   // while the shown run (or any listed run) is being written to
  var POLL_IDLE_MS = 5000;   // otherwise, to notice a run that starts again
  var PLAY_MS = 400;         // one timeline frame while playing
  var MAX_SHOWN = 560;       // sample grids are enlarged by whole factors up to about this width
  var PALETTE = ['#2f6fdf', '#e0702b', '#1c9b5a', '#9b4dca', '#c53030', '#0e9aa7', '#b7791f', '#d53f8c', '#4a5568', '#6b8e23'];
  var COMPARE_POINTS = 1500;

  var state = {
    view: null,          // 'list' or 'run'
    run: null,           // name of the run shown
    detail: null,        // last /api/runs/<name> answer
    losses: null,        // {steps, d, g} accumulated from /losses
    lossRun: null,
    index: -1,           // timeline position
    follow: true,
    playTimer: null,
    pollTimer: null,
    pollSeq: 0,
    preload: {},
    listed: null,        // runs of the last /api/runs answer
    compare: null,       // names of the runs ticked for the comparison chart (null until the first list)
    compareData: {},     // name -> {lastStep, steps, d, g}
    colors: {},          // name -> colour in the comparison chart
    rendered: {}         // section -> JSON of what it shows, to skip identical re-renders
  };

  // ---------------------------------------------------------------- small helpers

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        if (key === 'text') node.textContent = attrs[key];
        else if (key === 'className') node.className = attrs[key];
        else node.setAttribute(key, attrs[key]);
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    });
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function fileUrl(run, rel, version) {
    var url = '/files/' + encodeURIComponent(run) + '/' + rel.split('/').map(encodeURIComponent).join('/');
    return version ? url + '?v=' + encodeURIComponent(String(version)) : url;
  }

  function getJSON(url) {
    return fetch(url, { cache: 'no-store', credentials: 'same-origin' }).then(function (response) {
      if (!response.ok) {
        var error = new Error(response.status + ' for ' + url);
        error.status = response.status;
        throw error;
      }
      return response.json();
    });
  }

  function fmtLoss(value) {
    if (value === null || value === undefined) return '–';
    if (typeof value === 'string') return value;  // 'nan', 'inf', '-inf'
    return value.toFixed(4);
  }

  function fmtValue(value) {
    if (value === null || value === undefined) return '–';
    if (typeof value === 'number') {
      if (Number.isInteger(value)) return String(value);
      if (String(value).length <= 8) return String(value);  // 0.0002, 0.5, 12.25 as written
      var abs = Math.abs(value);
      if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return value.toExponential(3);
      return String(Number(value.toPrecision(5)));
    }
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
  }

  function fmtSeconds(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    if (seconds < 120) return seconds.toFixed(1) + ' s';
    if (seconds < 7200) return (seconds / 60).toFixed(1) + ' min';
    return (seconds / 3600).toFixed(1) + ' h';
  }

  function isBadLoss(value) { return typeof value === 'string'; }

  function settingMap(run) {
    var map = {};
    (run.settings || []).forEach(function (item) { map[item.key] = item.value; });
    return map;
  }

  function settingsText(run) {
    var s = settingMap(run);
    var parts = [];
    if (s.input_height !== undefined || s.output_height !== undefined) {
      var out = s.output_height !== undefined ? s.output_height : '?';
      if (s.output_width !== undefined && s.output_width !== s.output_height) out += 'x' + s.output_width;
      parts.push((s.input_height !== undefined ? s.input_height : '?') + '→' + out + (s.crop ? ' crop' : ''));
    }
    if (s.batch_size !== undefined) parts.push('batch ' + s.batch_size);
    if (s.learning_rate !== undefined) parts.push('lr ' + fmtValue(s.learning_rate));
    if (s.beta1 !== undefined) parts.push('β1 ' + fmtValue(s.beta1));
    if (s.z_dim !== undefined) parts.push('z ' + s.z_dim + (s.z_dist ? ' ' + s.z_dist : ''));
    if (s.g_steps !== undefined) parts.push('G steps ' + s.g_steps);
    return parts.join(' · ') || '–';
  }

  function deviceText(run) {
    var parts = [];
    [run.device, run.precision, run.precision_mode].forEach(function (value) {
      if (value && parts.indexOf(value) < 0) parts.push(String(value));
    });
    return parts.join(' · ') || '–';
  }

  function stepTarget(run) {
    if (run.train_steps) return run.train_steps;
    return null;
  }

  function progressText(run) {
    if (run.last_step === null || run.last_step === undefined) return run.has_log ? 'no steps yet' : 'no log yet';
    var target = stepTarget(run);
    return target ? run.last_step + ' / ' + target : String(run.last_step);
  }

  function epochText(run) {
    if (run.epoch === null || run.epoch === undefined) return '';
    return 'epoch ' + run.epoch + '/' + run.epochs + ' · batch ' + run.batch + '/' + run.batches;
  }

  function badge(run) {
    return run.live
      ? el('span', { className: 'badge live', title: 'being written to: log.txt, metrics, config or a sample changed in the last minute', text: 'live' })
      : el('span', { className: 'badge idle', title: 'nothing written in the last minute', text: 'idle' });
  }

  function setRefresh(live, text) {
    var node = $('refresh-status');
    clear(node);
    node.appendChild(el('span', { className: 'dot' + (live ? ' on' : '') }));
    node.appendChild(document.createTextNode(text));
  }

  function showBanner(text) {
    var node = $('banner');
    node.textContent = text || '';
    node.classList.toggle('hidden', !text);
  }

  function changed(section, value) {
    var json = JSON.stringify(value);
    if (state.rendered[section] === json) return false;
    state.rendered[section] = json;
    return true;
  }

  // ---------------------------------------------------------------- routing and polling

  function route() {
    var hash = window.location.hash || '#/';
    var match = /^#\/run\/(.+)$/.exec(hash);
    stopPlaying();
    state.rendered = {};
    if (match) {
      var name;
      try { name = decodeURIComponent(match[1]); } catch (e) { name = match[1]; }
      state.view = 'run';
      if (state.run !== name) {
        state.run = name;
        state.detail = null;
        state.losses = null;
        state.lossRun = null;
        state.index = -1;
        state.follow = true;
        $('follow-box').checked = true;
      }
    } else {
      state.view = 'list';
      state.run = null;
    }
    $('view-list').classList.toggle('hidden', state.view !== 'list');
    $('view-run').classList.toggle('hidden', state.view !== 'run');
    poll();
  }

  function schedule(ms) {
    clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(poll, ms);
  }

  function poll() {
    clearTimeout(state.pollTimer);
    var seq = ++state.pollSeq;
    var work = state.view === 'run' ? pollRun() : pollList();
    work.then(function (live) {
      if (seq !== state.pollSeq) return;
      showBanner('');
      var now = new Date();
      setRefresh(live, (live ? 'live · ' : '') + 'updated ' + now.toLocaleTimeString());
      schedule(live ? POLL_LIVE_MS : POLL_IDLE_MS);
    }).catch(function (error) {
      if (seq !== state.pollSeq) return;
      if (error && error.status === 404 && state.view === 'run') {
        showBanner('There is no run called "' + state.run + '" in this folder (any more).');
      } else {
        showBanner('Cannot reach the server (' + (error && error.message ? error.message : error) + '); retrying.');
      }
      setRefresh(false, 'retrying…');
      schedule(POLL_IDLE_MS);
    });
  }

  // ---------------------------------------------------------------- list view

  function pollList() {
    return getJSON('/api/runs').then(function (data) {
      if (state.view !== 'list') return false;
      state.listed = data.runs;
      data.runs.forEach(function (run) {
        if (!state.colors[run.name]) state.colors[run.name] = PALETTE[Object.keys(state.colors).length % PALETTE.length];
      });
      if (state.compare === null) {
        state.compare = loadCompare(data.runs);
      }
      renderList(data);
      return updateCompare().then(function () {
        return data.runs.some(function (run) { return run.live; });
      });
    });
  }

  // The ticked runs: remembered in localStorage, else the three most recently written ones.
  function loadCompare(runs) {
    var names = runs.map(function (run) { return run.name; });
    var saved = null;
    try { saved = JSON.parse(window.localStorage.getItem('dcgan-web-compare') || 'null'); } catch (e) { saved = null; }
    if (Array.isArray(saved)) return saved.filter(function (name) { return names.indexOf(name) >= 0; });
    return names.filter(function (name, i) {
      return i < 3 && runs[i].last_step !== null && runs[i].last_step !== undefined;
    });
  }

  function saveCompare() {
    try { window.localStorage.setItem('dcgan-web-compare', JSON.stringify(state.compare)); } catch (e) { /* private mode */ }
  }

  // Fetches the losses of ticked runs whose last step changed, then redraws the comparison chart.
  function updateCompare() {
    var runs = (state.listed || []).filter(function (run) { return state.compare.indexOf(run.name) >= 0; });
    $('compare-card').classList.toggle('hidden', !(state.listed || []).some(function (run) { return run.last_step !== null; }));
    var requests = runs.filter(function (run) {
      var known = state.compareData[run.name];
      return !known || known.lastStep !== run.last_step;
    }).map(function (run) {
      return getJSON('/api/runs/' + encodeURIComponent(run.name) + '/losses?max_points=' + COMPARE_POINTS)
        .then(function (series) {
          state.compareData[run.name] = { lastStep: series.last_step, steps: series.steps, d: series.d_loss, g: series.g_loss };
        });
    });
    return Promise.all(requests).then(drawCompare);
  }

  function drawCompare() {
    if (state.view !== 'list' || !state.compare) return;
    var which = document.querySelector('input[name="compare-series"]:checked').value;
    var series = [];
    (state.listed || []).forEach(function (run) {
      var data = state.compareData[run.name];
      if (state.compare.indexOf(run.name) < 0 || !data) return;
      series.push({ label: run.name, color: state.colors[run.name], steps: data.steps, values: data[which] });
    });
    var chart = $('compare-chart');
    chart.setAttribute('data-series-count', String(series.length));
    lineChart(chart, $('compare-legend'), series,
      state.compare.length ? 'No loss lines in the ticked runs\' logs yet' : 'Tick runs in the table to compare their losses',
      $('compare-smooth').checked);
  }

  function renderList(data) {
    $('out-dir').textContent = data.out_dir;
    var message = $('list-message');
    if (changed('list-message', [data.problem, data.runs.length])) {
      clear(message);
      if (data.problem) {
        message.appendChild(el('div', { className: 'message', id: 'list-empty' }, [
          el('strong', { text: data.problem }),
          'Runs appear here as soon as training writes one: ',
          el('code', { text: 'python main.py --train --out_dir ' + data.out_dir + ' …' })
        ]));
      } else if (!data.runs.length) {
        message.appendChild(el('div', { className: 'message', id: 'list-empty' }, [
          el('strong', { text: 'No runs in ' + data.out_dir + ' yet.' }),
          'A run folder holds config.json, log.txt, samples/ and checkpoint/; start one with ',
          el('code', { text: 'python main.py --train --out_dir ' + data.out_dir + ' …' })
        ]));
      }
    }
    $('runs-card').classList.toggle('hidden', !data.runs.length);
    var hint = data.ignored.length ? 'Not run folders (no config.json, log.txt, samples/ or checkpoint/): ' + data.ignored.join(', ') + '. ' : '';
    if (data.runs.length) hint += '"live": the run is being written to (log.txt, metrics.jsonl, config.json, a sample or the checkpoint index changed in the last ' + data.live_seconds + ' s).';
    $('list-hint').textContent = hint;

    var body = $('runs-body');
    var rows = data.runs.map(function (run) {
      return [run.name, run.live, run.last_step, run.d_loss, run.g_loss, run.age_text, run.settings, run.device,
        run.precision_mode, run.dataset, run.metrics_latest, run.config_problem];
    });
    if (!changed('list-rows', [rows, state.compare])) return;
    clear(body);
    data.runs.forEach(function (run) {
      var tick = el('input', { type: 'checkbox', title: 'Compare this run\'s losses', 'aria-label': 'Compare ' + run.name });
      tick.checked = state.compare.indexOf(run.name) >= 0;
      tick.addEventListener('click', function (event) { event.stopPropagation(); });
      tick.addEventListener('change', function () {
        state.compare = state.compare.filter(function (name) { return name !== run.name; });
        if (tick.checked) state.compare.push(run.name);
        saveCompare();
        updateCompare();
      });
      var metrics = Object.keys(run.metrics_latest || {}).filter(function (k) { return k !== 'step'; }).slice(0, 3)
        .map(function (k) { return k + ' ' + fmtValue(run.metrics_latest[k]); }).join(' · ');
      var row = el('tr', { className: 'run-row', 'data-run': run.name, tabindex: '0' }, [
        el('td', { className: 'pick' }, [tick]),
        el('td', null, [el('span', { className: 'run-name', text: run.name }), badge(run),
          run.config_problem ? el('span', { className: 'sub', text: run.config_problem }) : null]),
        el('td', { text: run.dataset || '–' }),
        el('td', { className: 'settings', text: settingsText(run) }),
        el('td', null, [deviceText(run), run.tf_version ? el('span', { className: 'sub', text: 'TF ' + run.tf_version }) : null]),
        el('td', { className: 'num' }, [progressText(run), el('span', { className: 'sub', text: epochText(run) })]),
        el('td', { className: 'num' + (isBadLoss(run.d_loss) ? ' bad' : ''), text: fmtLoss(run.d_loss) }),
        el('td', { className: 'num' + (isBadLoss(run.g_loss) ? ' bad' : ''), text: fmtLoss(run.g_loss) }),
        el('td', { className: 'settings', text: metrics || '–' }),
        el('td', { className: 'num', text: run.age_text ? run.age_text + ' ago' : '–' })
      ]);
      var open = function () { window.location.hash = '#/run/' + encodeURIComponent(run.name); };
      row.addEventListener('click', open);
      row.addEventListener('keydown', function (event) { if (event.key === 'Enter') open(); });
      body.appendChild(row);
    });
  }

  // ---------------------------------------------------------------- run view

  function pollRun() {
    var name = state.run;
    var detailReq = getJSON('/api/runs/' + encodeURIComponent(name));
    var since = state.losses && state.lossRun === name && state.losses.steps.length
      ? state.losses.steps[state.losses.steps.length - 1] : null;
    var lossReq = getJSON('/api/runs/' + encodeURIComponent(name) + '/losses' + (since !== null ? '?since=' + since : ''));
    return Promise.all([detailReq, lossReq]).then(function (answers) {
      if (state.run !== name || state.view !== 'run') return false;
      state.detail = answers[0];
      mergeLosses(name, answers[1], since);
      renderRun(answers[0]);
      return answers[0].live;
    });
  }

  function mergeLosses(name, series, since) {
    if (!state.losses || state.lossRun !== name || series.reset || since === null) {
      state.losses = { steps: [], d: [], g: [], total: 0, nonfinite: 0 };
      state.lossRun = name;
    }
    var losses = state.losses;
    for (var i = 0; i < series.steps.length; i++) {
      losses.steps.push(series.steps[i]);
      losses.d.push(series.d_loss[i]);
      losses.g.push(series.g_loss[i]);
    }
    losses.total = series.total_points;
    losses.nonfinite += series.nonfinite;
    if (series.steps.length || changed('chart-size', losses.steps.length)) drawChart();
  }

  function renderRun(run) {
    $('run-title').textContent = run.name;
    document.title = run.name + ' · DCGAN runs';
    var badgeHolder = $('run-badge');
    clear(badgeHolder);
    badgeHolder.appendChild(badge(run));
    var sub = [run.dataset || 'unknown data set', deviceText(run)];
    if (run.tf_version) sub.push('TF ' + run.tf_version);
    $('run-sub').textContent = sub.join(' · ');
    renderNotes(run);
    renderStats(run);
    renderTimeline(run);
    renderMetrics(run);
    renderGallery('generated', run, run.generated, run.generated_count);
    renderGallery('visualize', run, run.visualize, run.visualize.length);
    renderConfig(run);
    renderLog(run);
  }

  function renderNotes(run) {
    var notes = [];
    if (run.config_problem) notes.push(run.config_problem + '.');
    if (!run.has_log) notes.push('No log.txt yet, so there are no losses to show.');
    if (state.losses && state.losses.nonfinite) notes.push(state.losses.nonfinite + ' logged step(s) have a nan or inf loss (gaps in the chart).');
    if (!changed('notes', notes)) return;
    var holder = $('run-notes');
    clear(holder);
    notes.forEach(function (text) { holder.appendChild(el('div', { className: 'note', text: text })); });
  }

  function stat(label, value, extra, cls) {
    return el('div', { className: 'stat' }, [
      el('div', { className: 'label', text: label }),
      el('div', { className: 'value' + (cls ? ' ' + cls : ''), text: value, title: value }),
      extra ? el('div', { className: 'extra', text: extra, title: extra }) : null
    ]);
  }

  function renderStats(run) {
    var items = [
      ['Step', progressText(run), epochText(run), ''],
      ['D loss', fmtLoss(run.d_loss), 'last logged', isBadLoss(run.d_loss) ? 'bad' : 'd'],
      ['G loss', fmtLoss(run.g_loss), 'last logged', isBadLoss(run.g_loss) ? 'bad' : 'g'],
      ['Time', fmtSeconds(run.elapsed), run.age_text ? 'updated ' + run.age_text + ' ago' : '', ''],
      ['Samples', String(run.n_samples), run.last_sample_step !== null ? 'last at step ' + run.last_sample_step : '', ''],
      ['Checkpoint', run.has_checkpoint ? 'saved' : 'none yet', '', '']
    ];
    var latest = run.metrics && run.metrics.latest ? run.metrics.latest : {};
    Object.keys(latest).filter(function (k) { return k !== 'step'; }).slice(0, 4).forEach(function (key) {
      items.push([key, fmtValue(latest[key]), latest.step !== undefined ? 'at step ' + latest.step : '', '']);
    });
    if (!changed('stats', items)) return;
    var holder = $('run-stats');
    clear(holder);
    items.forEach(function (item) { holder.appendChild(stat(item[0], item[1], item[2], item[3])); });
  }

  // ---- timeline

  function renderTimeline(run) {
    var timeline = run.timeline || [];
    var slider = $('timeline-slider');
    var count = timeline.length;
    $('timeline-count').textContent = count ? count + ' sample grid' + (count > 1 ? 's' : '') : '';
    slider.max = String(Math.max(0, count - 1));
    slider.disabled = count < 2;
    $('play-btn').disabled = count < 2;
    if (state.index < 0 || state.index >= count || (state.follow && !state.playTimer)) {
      state.index = count - 1;
    }
    slider.value = String(Math.max(0, state.index));

    if (changed('reals', run.reals)) {
      setImage($('reals-frame'), run.reals ? fileUrl(run.name, run.reals.file, run.reals.mtime) : null,
        'No samples/reals.png yet');
    }
    showFrame();
    timeline.slice(-3).forEach(function (item) { preload(fileUrl(run.name, item.file, item.mtime)); });
  }

  function showFrame() {
    var run = state.detail;
    var timeline = run ? run.timeline || [] : [];
    var item = timeline[state.index];
    var label = $('step-label');
    if (!item) {
      label.textContent = '–';
      $('fake-caption').textContent = 'Generated';
      setImage($('fake-frame'), null, 'No sample grids yet (samples/train_<step>.png)');
      return;
    }
    label.textContent = 'step ' + item.step + '  (' + (state.index + 1) + '/' + timeline.length + ')';
    label.setAttribute('data-step', String(item.step));
    $('fake-caption').textContent = 'Generated at step ' + item.step;
    setImage($('fake-frame'), fileUrl(run.name, item.file, item.mtime), 'Sample not readable yet');
    var next = timeline[state.index + 1];
    if (next) preload(fileUrl(run.name, next.file, next.mtime));
  }

  function preload(url) {
    if (state.preload[url]) return;
    if (Object.keys(state.preload).length > 200) state.preload = {};  // a long run has thousands of grids
    var image = new Image();
    image.src = url;
    state.preload[url] = image;
  }

  // Shows url in a dark frame at an integer multiple of its pixel size (or shrunk to fit), pixelated.
  function setImage(frame, url, emptyText) {
    var img = frame.querySelector('img');
    var empty = frame.querySelector('.empty');
    if (!url) {
      img.classList.add('hidden');
      img.removeAttribute('src');
      if (!empty) frame.appendChild(el('div', { className: 'empty', text: emptyText }));
      else empty.textContent = emptyText;
      return;
    }
    if (empty) empty.parentNode.removeChild(empty);
    img.classList.remove('hidden');
    if (img.getAttribute('src') === url) return;
    img.onload = fitPixels;
    img.onerror = function () {
      img.classList.add('hidden');
      if (!frame.querySelector('.empty')) frame.appendChild(el('div', { className: 'empty', text: emptyText }));
    };
    img.src = url;
    if (img.complete && img.naturalWidth) fitPixels();
  }

  // Shows the real and the generated grid at the same whole-number enlargement, the largest that fits
  // both frames (at most MAX_SHOWN px either way); a grid too big even at 1x is shrunk on its own.
  function fitPixels() {
    var fake = $('fake-img');
    if (fake.naturalWidth && !fake.classList.contains('hidden')) chooseLayout(fake.naturalWidth);
    var shown = ['reals-img', 'fake-img'].map(function (id) { return $(id); }).filter(function (img) {
      return img.naturalWidth && !img.classList.contains('hidden');
    });
    var fits = shown.map(function (img) {
      var roomW = Math.min(img.parentNode.clientWidth - 16, MAX_SHOWN);
      return Math.min(roomW / img.naturalWidth, MAX_SHOWN / img.naturalHeight);
    });
    var common = Math.floor(Math.min.apply(null, fits.concat([8])));
    shown.forEach(function (img, i) {
      var scale = fits[i] >= 1 ? Math.max(1, common) : fits[i];
      img.style.width = Math.round(img.naturalWidth * scale) + 'px';
      img.style.height = Math.round(img.naturalHeight * scale) + 'px';
      img.title = img.naturalWidth + '×' + img.naturalHeight + ' px' + (scale !== 1 ? ', shown ×' + fmtValue(scale) : '');
    });
  }

  // Sample grids and the loss chart sit side by side unless that would shrink the grids below their
  // pixel size; then the timeline takes the full width (a 64x64 batch-64 grid is 512 px wide).
  function chooseLayout(gridWidth) {
    var top = $('top-grid');
    var pairNeeds = 2 * (gridWidth + 16) + 14 + 34;  // two frames with padding, the gap, the card padding
    var stacked = pairNeeds > (top.clientWidth - 16) / 2 && pairNeeds <= top.clientWidth + 200;
    if (top.classList.contains('stacked') !== stacked) top.classList.toggle('stacked', stacked);
  }

  function stopPlaying() {
    if (state.playTimer) clearInterval(state.playTimer);
    state.playTimer = null;
    $('play-btn').textContent = '▶';
    $('play-btn').title = 'Play the timeline';
  }

  function togglePlay() {
    if (state.playTimer) { stopPlaying(); return; }
    var timeline = state.detail ? state.detail.timeline : [];
    if (timeline.length < 2) return;
    if (state.index >= timeline.length - 1) state.index = -1;
    $('play-btn').textContent = '❚❚';
    $('play-btn').title = 'Pause';
    var step = function () {
      var items = state.detail ? state.detail.timeline : [];
      if (state.index >= items.length - 1) { stopPlaying(); return; }
      state.index += 1;
      $('timeline-slider').value = String(state.index);
      showFrame();
      if (state.index >= items.length - 1) stopPlaying();
    };
    state.playTimer = setInterval(step, PLAY_MS);
    step();
  }

  // ---- loss charts (uPlot, vendored in static/vendor/uplot)

  function smooth(values, weight) {
    var out = [];
    var last = null;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v === null) { out.push(null); continue; }
      last = last === null ? v : last * weight + (1 - weight) * v;  // EMA started at the first value
      out.push(last);
    }
    return out;
  }

  // The legend shows each line's nearest logged step: runs joined on one step axis leave undefined
  // where another run logged (null is a nan or inf loss, a gap in the line).
  function nearestDefined(plot, seriesIdx, i) {
    var values = plot.data[seriesIdx];
    for (var d = 0; d < values.length; d++) {
      if (values[i - d] !== undefined) return i - d;
      if (values[i + d] !== undefined) return i + d;
    }
    return i;
  }

  var STEP_INCRS = [];  // whole steps between the x axis' ticks
  for (var p = 1; p <= 1e9; p *= 10) STEP_INCRS.push(p, 2 * p, 5 * p);

  function axis(extra) {
    return Object.assign({ stroke: '#6b7385', font: '11px system-ui, sans-serif', grid: { stroke: '#eceff4', width: 1 },
      ticks: { stroke: '#c4cad6', width: 1, size: 4 } }, extra);
  }

  // Draws line series [{label, color, steps, values}] with uPlot into chart (its legend, with the losses
  // under the cursor, into legend), a faint raw line under each smoothed one when smoothOn. When nothing
  // is finite the chart stays empty and its CSS shows data-empty instead. Returns whether it drew.
  function lineChart(chart, legend, series, emptyText, smoothOn) {
    var count = 0, finite = false;
    series.forEach(function (s) {
      count += s.steps.length;
      finite = finite || s.values.some(function (v) { return v !== null; });
    });
    chart.setAttribute('data-empty', count ? 'All logged losses are nan or inf' : emptyText);
    var lines = [{ label: 'step' }], tables = [];
    series.forEach(function (s) {
      var table = [s.steps, s.values];
      var smoothed = smoothOn && s.steps.length > 2;
      if (smoothed) {
        table.push(smooth(s.values, 0.9));
        lines.push({ label: s.label + ' raw', 'class': 'raw', stroke: s.color + '40', width: 1 });
      }
      lines.push({ label: s.label, stroke: s.color, width: 1.6, value: legendValue(smoothed ? 1 : 0) });
      tables.push(table);
    });
    var shape = finite ? JSON.stringify(lines) : '';
    if (chart.plot && chart.shape !== shape) { chart.plot.destroy(); chart.plot = null; }
    chart.shape = shape;
    if (!finite) return false;
    var data = tables.length > 1 ? uPlot.join(tables) : tables[0];
    var size = { width: chart.clientWidth, height: chart.clientHeight };
    if (chart.plot) {
      chart.plot.setSize(size);
      chart.plot.setData(data);
      return true;
    }
    chart.plot = new uPlot({
      width: size.width, height: size.height, series: lines, scales: { x: { time: false } },
      axes: [axis({ incrs: STEP_INCRS }), axis()], cursor: { dataIdx: nearestDefined },
      legend: { mount: function (plot, table) { legend.appendChild(table); } }
    }, data, chart);
    return true;
  }

  // A legend value: none without a cursor, else the logged loss or 'nan/inf' (with smoothing on, that of
  // the faint raw line drawn just before the smoothed one, whose own legend row CSS hides).
  function legendValue(offset) {
    return function (plot, value, seriesIdx, idx) {
      if (idx === null) return null;
      var logged = plot.data[seriesIdx - offset][idx];
      return logged === null ? 'nan/inf' : fmtLoss(logged);
    };
  }

  function drawChart() {
    var chart = $('loss-chart');
    var losses = state.losses || { steps: [], d: [], g: [], total: 0 };
    var steps = losses.steps;
    chart.setAttribute('data-points', String(steps.length));
    var drawn = lineChart(chart, $('loss-legend'), [
      { label: 'D', color: PALETTE[0], steps: steps, values: losses.d },
      { label: 'G', color: PALETTE[1], steps: steps, values: losses.g }
    ], 'No loss lines in log.txt yet', $('smooth-box').checked);
    var text = '';
    if (drawn) {
      text = steps.length + ' logged step' + (steps.length > 1 ? 's' : '');
      if (losses.total > steps.length) text += ' (of ' + losses.total + ', thinned evenly)';
      text += ', steps ' + steps[0] + '–' + steps[steps.length - 1] + '. Drag to zoom, double-click to reset.';
    }
    $('chart-note').textContent = text;
  }

  // ---- metrics, galleries, flags, log

  function renderMetrics(run) {
    var metrics = run.metrics || { count: 0, rows: [], columns: [] };
    $('metrics-card').classList.toggle('hidden', !metrics.count);
    if (!metrics.count || !changed('metrics', metrics)) return;
    $('metrics-count').textContent = metrics.count > metrics.rows.length
      ? 'last ' + metrics.rows.length + ' of ' + metrics.count + ' rows' : metrics.count + ' row' + (metrics.count > 1 ? 's' : '');
    var table = $('metrics-table');
    clear(table);
    table.appendChild(el('thead', null, [el('tr', null, metrics.columns.map(function (c) { return el('th', { text: c }); }))]));
    var body = el('tbody');
    metrics.rows.slice().reverse().forEach(function (row) {
      body.appendChild(el('tr', null, metrics.columns.map(function (c) { return el('td', { text: fmtValue(row[c]) }); })));
    });
    table.appendChild(body);
  }

  function renderGallery(kind, run, files, total) {
    var key = 'gallery-' + kind;
    if (!changed(key, [run.name, files, total])) return;
    var holder = $(kind + '-gallery');
    clear(holder);
    $(kind + '-count').textContent = total ? (total > files.length ? files.length + ' of ' + total : String(total)) : '';
    if (!files.length) {
      var hint = kind === 'generated'
        ? 'None yet: python main.py --generate N … writes generated/'
        : 'None yet: python main.py --visualize … writes visualize/';
      holder.appendChild(el('div', { className: 'empty', text: hint }));
      return;
    }
    files.forEach(function (rel) {
      var url = fileUrl(run.name, rel);
      var img = el('img', { src: url, alt: rel, loading: 'lazy' });
      img.addEventListener('load', function () {
        var w = img.naturalWidth;
        var scale = w <= 64 ? 2 : w <= 300 ? 1 : 300 / w;
        img.style.width = Math.round(w * scale) + 'px';
      });
      var name = rel.split('/').pop();
      holder.appendChild(el('figure', null, [el('a', { href: url, target: '_blank', rel: 'noopener', title: name }, [img]),
        el('figcaption', { text: name })]));
    });
  }

  function renderConfig(run) {
    if (!changed('config', [run.name, run.config, run.files])) return;
    var table = $('config-table');
    clear(table);
    var config = run.config || {};
    var keys = Object.keys(config).sort();
    if (!keys.length) {
      table.appendChild(el('tr', null, [el('td', { text: run.config_problem || 'no config.json yet' })]));
    }
    keys.forEach(function (key) {
      table.appendChild(el('tr', null, [el('th', { text: key }), el('td', { text: fmtValue(config[key]) })]));
    });
    var links = $('config-links');
    clear(links);
    (run.files || []).forEach(function (file, i) {
      if (i) links.appendChild(document.createTextNode(' · '));
      links.appendChild(el('a', { href: fileUrl(run.name, file), target: '_blank', rel: 'noopener', text: file }));
    });
  }

  function renderLog(run) {
    if (!changed('log', run.log_tail)) return;
    var pre = $('log-tail');
    var nearBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 30;
    pre.textContent = run.log_tail.length ? run.log_tail.join('\n') : 'no log.txt yet';
    if (nearBottom) pre.scrollTop = pre.scrollHeight;
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    var slider = $('timeline-slider');
    slider.addEventListener('input', function () {
      stopPlaying();
      state.index = parseInt(slider.value, 10);
      var timeline = state.detail ? state.detail.timeline : [];
      state.follow = state.index >= timeline.length - 1 && $('follow-box').checked;
      showFrame();
    });
    $('play-btn').addEventListener('click', togglePlay);
    $('follow-box').addEventListener('change', function (event) {
      state.follow = event.target.checked;
      if (state.follow && state.detail) {
        state.index = state.detail.timeline.length - 1;
        $('timeline-slider').value = String(state.index);
        showFrame();
      }
    });
    $('smooth-box').addEventListener('change', drawChart);
    // Refit the grids and redraw the chart whenever their boxes change size (window, layout, images).
    var chartSize = '';
    var observer = new ResizeObserver(function () {
      if (state.view !== 'run') return;
      fitPixels();
      var wrap = $('chart-wrap');
      var size = wrap.clientWidth + 'x' + wrap.clientHeight;
      if (size !== chartSize) { chartSize = size; drawChart(); }
    });
    ['top-grid', 'chart-wrap'].forEach(function (id) { observer.observe($(id)); });
    var compareSize = '';
    new ResizeObserver(function () {
      var wrap = $('compare-wrap');
      var size = wrap.clientWidth + 'x' + wrap.clientHeight;
      if (state.view === 'list' && size !== compareSize) { compareSize = size; drawCompare(); }
    }).observe($('compare-wrap'));
    Array.prototype.forEach.call(document.querySelectorAll('input[name="compare-series"]'), function (input) {
      input.addEventListener('change', drawCompare);
    });
    $('compare-smooth').addEventListener('change', drawCompare);
    document.addEventListener('visibilitychange', function () { if (!document.hidden) poll(); });
    window.addEventListener('hashchange', route);
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
}());
