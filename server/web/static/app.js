// nanonas web view: a small single-page app over the JSON API (/api/v1/). Every text that comes
// from the server (job names, dataset sources, errors, class names) goes into the page through
// textContent / setAttribute (text nodes), never parsed as HTML markup.
'use strict';
(function () {
  const app = document.getElementById('app');
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ---- DOM helpers: children are nodes or strings (text nodes).
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'className') e.className = v;
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function table(headers, rows) {
    return el('table', {}, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
      el('tbody', {}, rows));
  }
  function td(value, numeric) { return el('td', numeric ? { className: 'num' } : {}, value); }

  // ---- formatting
  const num = (v) => (v === undefined || v === null || v === '' ? 0 : Number(v));
  function bytes(n) {
    n = num(n);
    if (n >= 1048576) return (n / 1048576).toFixed(1) + ' MiB';
    if (n >= 1024) return (n / 1024).toFixed(1) + ' KiB';
    return n + ' B';
  }
  function count(n) {
    n = num(n);
    if (n >= 1e9) return (n / 1e9).toFixed(2) + ' G';
    if (n >= 1e6) return (n / 1e6).toFixed(2) + ' M';
    if (n >= 1e3) return (n / 1e3).toFixed(1) + ' k';
    return String(n);
  }
  const pct = (a) => (num(a) * 100).toFixed(1) + '%';
  function dur(s) {
    if (s === undefined || s === null) return '';
    s = num(s);
    if (s >= 3600) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    if (s >= 60) return Math.floor(s / 60) + 'm ' + Math.floor(s % 60) + 's';
    return s.toFixed(1) + ' s';
  }
  const shortState = (s) => String(s || '').replace(/^(JOB|CANDIDATE)_STATE_/, '').toLowerCase();
  const badge = (s) => el('span', { className: 'state ' + shortState(s) }, shortState(s));
  function target(t) {
    const parts = [];
    if (t.name) parts.push(t.name);
    if (num(t.ram_bytes)) parts.push('RAM ' + bytes(t.ram_bytes));
    if (num(t.flash_bytes)) parts.push('Flash ' + bytes(t.flash_bytes));
    if (num(t.macc)) parts.push('MACC ' + count(t.macc));
    if (num(t.host_memory_bytes)) parts.push('host ' + bytes(t.host_memory_bytes));
    return parts.join(', ');
  }
  const jobLink = (id, name) => el('a', { href: '/jobs/' + encodeURIComponent(id) }, name || id);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function getJson(url) {
    const r = await fetch(url, { cache: 'no-store' });
    const body = await r.json().catch(() => null);
    if (!r.ok) throw new Error(body && body.error ? body.error.message : r.status + ' ' + r.statusText);
    return body;
  }
  function showError(where, err) {
    where.replaceChildren(el('p', { className: 'error' }, String(err && err.message ? err.message : err)));
  }
  // Calls draw() every `ms` while the page stays the same.
  async function refresh(page, draw, ms) {
    for (;;) {
      try { await draw(); } catch (err) { showError(app, err); }
      await sleep(ms);
      if (app.dataset.page !== page) return;
    }
  }

  // ---- jobs
  const STATES = ['QUEUED', 'PREPARING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];
  // "preparing the test set: 1.2 k / 5.0 k images" from a Preparation (proto JSON or summary).
  function preparationText(p) {
    if (!p) return 'waiting to prepare the dataset';
    let s = 'preparing the ' + (p.test_set ? 'test set' : 'dataset');
    if (p.reused) return s + ': already packed';
    if (num(p.images_total)) s += ': ' + count(p.images_done) + ' / ' + count(p.images_total) + ' images';
    return s;
  }
  function jobsPage() {
    app.dataset.page = 'jobs';
    document.title = 'nanonas: jobs';
    const filter = new URLSearchParams(location.search).get('state') || '';
    const filters = el('p', { className: 'filters' }, 'State: ',
      el('a', { href: '/', className: filter ? '' : 'active' }, 'all'),
      STATES.map((s) => el('a', { href: '/?state=' + s, className: filter === s ? 'active' : '' },
        s.toLowerCase())));
    const body = el('div');
    app.replaceChildren(el('h1', {}, 'Jobs'), filters, body);
    refresh('jobs', async () => {
      const data = await getJson('/api/v1/jobs' + (filter ? '?state=' + encodeURIComponent(filter) : ''));
      app.dataset.jobs = String(data.jobs.length);
      if (!data.jobs.length) { body.replaceChildren(el('p', { className: 'muted' }, 'No jobs.')); return; }
      body.replaceChildren(table(
        ['job', 'dataset', 'target', 'state', 'progress', 'result', 'created', 'elapsed', 'ETA'],
        data.jobs.map((j) => {
          const p = j.progress;
          const run = p.running;
          let progress = p.settled + ' / ' + p.candidates + ' candidates';
          if (j.phase === 'queued' || j.phase === 'preparing') progress = preparationText(j.preparation);
          else if (run) progress += run.final_training ? ', final training epoch ' + run.epoch + '/' + run.epochs
            : ', (' + run.k + ',' + run.c + ') epoch ' + run.epoch + '/' + run.epochs;
          let result = '';
          if (j.result) {
            result = j.result.found ? '(' + j.result.k + ',' + j.result.c + ') ' + pct(j.result.validation_accuracy)
              : 'no model fits';
            if (j.result.quantized_test_accuracy !== null) result += ', test uint8 ' + pct(j.result.quantized_test_accuracy);
          }
          if (j.error) result = j.error;
          return el('tr', { className: 'job', dataset: { id: j.id } },
            el('td', {}, jobLink(j.id, j.name), el('div', { className: 'muted' }, j.id)),
            td(j.dataset_id.replace(/^sha256:/, '').slice(0, 12)), td(target(j.target)), el('td', {}, badge(j.state)),
            td(progress), el('td', { className: j.error ? 'error' : '' }, result), td(j.created),
            td(dur(j.elapsed_seconds), true), td(j.eta_seconds === null ? '' : dur(j.eta_seconds), true));
        })));
    }, 2000);
  }

  // ---- one job
  // The (k, c) grid of the search path: a cell per candidate, coloured by state, joined in path
  // order; the result framed. Records in data-drawn how many candidates it drew.
  function searchGrid(job) {
    const cands = job.candidates || [];
    const ks = cands.map((c) => num(c.k)), cs = cands.map((c) => num(c.c));
    const maxK = Math.max(1, ...ks), maxC = Math.max(1, ...cs);
    const minK = Math.min(maxK, ...ks);
    const cell = 34, left = 44, top = 10, bottom = 34;
    const rows = maxK - minK + 1, cols = maxC + 1;
    const w = left + cols * cell + 10, h = top + rows * cell + bottom;
    const g = svg('svg', { class: 'grid', width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: 'img' });
    const x = (c) => left + num(c) * cell, y = (k) => top + (maxK - num(k)) * cell;
    for (let k = minK; k <= maxK; ++k) g.appendChild(svg('text', { class: 'axis', x: 4, y: y(k) + cell / 2 + 4 }, 'k=' + k));
    for (let c = 0; c <= maxC; ++c) g.appendChild(svg('text', { class: 'axis', x: x(c) + cell / 2 - 8, y: h - 18 }, 'c=' + c));
    g.appendChild(svg('text', { class: 'axis', x: left, y: h - 4 }, 'k: kernels of the first layer, c: cells'));
    const best = job.result && job.result.found ? [num(job.result.k), num(job.result.c)] : null;
    let drawn = 0;
    for (const c of cands) {
      const isBest = best && best[0] === num(c.k) && best[1] === num(c.c);
      const rect = svg('rect', { class: 'cell cand ' + shortState(c.state) + (isBest ? ' best' : ''),
        x: x(c.c), y: y(c.k), width: cell, height: cell, rx: 3 },
      svg('title', {}, `(${num(c.k)},${num(c.c)}) ${shortState(c.state)}` +
        (c.state === 'CANDIDATE_STATE_DONE' ? ' ' + pct(c.best_validation_accuracy) : '')));
      g.appendChild(rect);
      if (c.state === 'CANDIDATE_STATE_DONE') {
        g.appendChild(svg('text', { class: 'label', x: x(c.c) + cell / 2, y: y(c.k) + cell / 2 + 3 },
          Math.round(num(c.best_validation_accuracy) * 100)));
      }
      ++drawn;
    }
    if (cands.length > 1) {
      const pts = cands.slice().sort((a, b) => num(a.sequence) - num(b.sequence))
        .map((c) => (x(c.c) + cell / 2) + ',' + (y(c.k) + cell / 2)).join(' ');
      g.appendChild(svg('polyline', { class: 'path', points: pts }));
    }
    g.dataset.drawn = String(drawn);
    return g;
  }

  // Validation (and training) accuracy per epoch of the final training.
  function curve(epochs) {
    const w = 420, h = 220, l = 40, r = 10, t = 10, b = 30;
    const n = epochs.length;
    const g = svg('svg', { class: 'curve', width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: 'img' });
    const x = (i) => l + (n > 1 ? (i / (n - 1)) * (w - l - r) : (w - l - r) / 2);
    const y = (a) => t + (1 - num(a)) * (h - t - b);
    for (const a of [0, 0.25, 0.5, 0.75, 1]) {
      g.appendChild(svg('line', { class: 'gridline', x1: l, x2: w - r, y1: y(a), y2: y(a) }));
      g.appendChild(svg('text', { class: 'axis', x: 4, y: y(a) + 4 }, Math.round(a * 100) + '%'));
    }
    g.appendChild(svg('text', { class: 'axis', x: l, y: h - 8 }, 'epoch 1'));
    g.appendChild(svg('text', { class: 'axis', x: w - r - 50, y: h - 8 }, 'epoch ' + n));
    const line = (key, cls) => svg('polyline', { class: cls,
      points: epochs.map((e, i) => x(i) + ',' + y(e[key])).join(' ') });
    g.appendChild(line('train_accuracy', 'line train'));
    g.appendChild(line('validation_accuracy', 'line'));
    epochs.forEach((e, i) => g.appendChild(svg('circle', { class: 'dot', cx: x(i), cy: y(e.validation_accuracy), r: 3 },
      svg('title', {}, `epoch ${num(e.epoch)}: validation ${pct(e.validation_accuracy)}`))));
    g.dataset.points = String(n);
    return g;
  }

  function facts(pairs) {
    return el('dl', { className: 'facts' }, pairs.filter((p) => p[1] !== '' && p[1] !== null && p[1] !== undefined)
      .map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }

  function candidateTable(job) {
    const cands = job.candidates || [];
    if (!cands.length) return el('p', { className: 'muted' }, 'No candidate yet.');
    return table(['#', '(k, c)', 'state', 'MACC', 'Flash', 'RAM', 'val. accuracy', 'duration', 'epochs', 'worker', 'note'],
      cands.map((c) => {
        let note = (c.violations || []).map((v) => `${v.resource} ${count(v.value)} > ${count(v.limit)}`).join('; ');
        if (c.error) note = c.error;
        const done = c.state === 'CANDIDATE_STATE_DONE';
        return el('tr', { className: 'candidate' }, td(num(c.sequence), true), td(`(${num(c.k)}, ${num(c.c)})`),
          el('td', {}, badge(c.state)), td(count(c.macc), true), td(bytes(c.flash_bytes), true),
          td(bytes(c.ram_bytes), true), td(done ? pct(c.best_validation_accuracy) : '', true),
          td(num(c.duration_seconds) ? dur(c.duration_seconds) : '', true), td((c.epochs || []).length, true),
          td(c.worker), td(note));
      }));
  }

  function finalSection(job) {
    const f = job.final_training;
    if (!f || f.state === 'CANDIDATE_STATE_UNSPECIFIED') {
      return el('p', { className: 'muted' }, job.spec && job.spec.final_training && job.spec.final_training.skip
        ? 'Skipped (the job stops after the search).' : 'Not started.');
    }
    const epochs = f.epochs || [];
    const info = facts([
      ['state', badge(f.state)], ['model', `(${num(f.k)}, ${num(f.c)})`],
      ['epochs', epochs.length + ' / ' + num(f.epochs_planned)],
      ['best validation', num(f.best_validation_accuracy) ? pct(f.best_validation_accuracy) + ' (epoch ' + num(f.best_epoch) + ')' : ''],
      ['uint8 validation', num(f.quantized_validation_accuracy) ? pct(f.quantized_validation_accuracy) : ''],
      ['test (float / uint8)', f.has_test_accuracy ? pct(f.float_test_accuracy) + ' / ' + pct(f.quantized_test_accuracy) : ''],
      ['Flash / RAM', num(f.flash_bytes) ? bytes(f.flash_bytes) + ' / ' + bytes(f.ram_bytes) : ''],
      ['duration', num(f.duration_seconds) ? dur(f.duration_seconds) : ''], ['error', f.error]]);
    return el('div', { className: 'columns' }, info, epochs.length ? curve(epochs) : null);
  }

  function artifactList(job) {
    const list = job.artifacts || [];
    if (!list.length) return el('p', { className: 'muted' }, 'None yet (written when the job succeeds).');
    return el('ul', {}, list.map((a) => el('li', {},
      el('a', { className: 'artifact', download: a.name,
        href: '/api/v1/jobs/' + encodeURIComponent(job.id) + '/artifacts/' + encodeURIComponent(a.name) }, a.name),
      ' ', el('span', { className: 'muted' }, bytes(a.size_bytes) + ' sha256 ' + String(a.sha256).slice(0, 16)))));
  }

  function renderJob(job, parts) {
    const spec = job.spec || {};
    const c = spec.constraints || {};
    document.title = 'nanonas: ' + (spec.name || job.id);
    parts.title.replaceChildren(spec.name || job.id, ' ', badge(job.state));
    const r = job.result;
    parts.facts.replaceChildren(facts([
      ['id', job.id], ['dataset', spec.dataset_id], ['test set', spec.test_dataset_id],
      ['input', spec.input ? `${num(spec.input.height)}x${num(spec.input.width)}x${num(spec.input.channels)}` : ''],
      ['classes', (job.class_names || []).join(', ')],
      ['preparation', job.state === 'JOB_STATE_QUEUED' || job.state === 'JOB_STATE_PREPARING'
        ? preparationText(job.preparation) : ''],
      ['target', target({ name: c.target, ram_bytes: c.ram_bytes, flash_bytes: c.flash_bytes, macc: c.macc,
        host_memory_bytes: c.host_memory_bytes })],
      ['created', job.created || ''], ['finished', job.finished || ''],
      ['result', r && (r.found || r.stop_reason) ? (r.found ? `(${num(r.k)}, ${num(r.c)}) validation ${pct(r.validation_accuracy)}, `
        + `MACC ${count(r.macc)}, Flash ${bytes(r.flash_bytes)}, RAM ${bytes(r.ram_bytes)}` : 'no model fits') +
        (r.stop_reason ? ' - ' + r.stop_reason : '') : ''],
      ['error', job.error]]));
    const grid = searchGrid(job);
    parts.grid.replaceChildren(grid);
    parts.candidates.replaceChildren(candidateTable(job));
    parts.final.replaceChildren(finalSection(job));
    parts.artifacts.replaceChildren(artifactList(job));
    // What a test (or a curious user) can read back from the DOM.
    const drawn = grid.dataset.drawn;
    const history = app.dataset.drawnHistory ? app.dataset.drawnHistory.split(',') : [];
    if (history[history.length - 1] !== drawn) history.push(drawn);
    Object.assign(app.dataset, { state: job.state, drawn, drawnHistory: history.join(','),
      renders: String(num(app.dataset.renders) + 1), artifacts: String((job.artifacts || []).length),
      curvePoints: String(((job.final_training || {}).epochs || []).length) });
  }

  function liveText(p) {
    const what = p.final_training ? 'final training' : `candidate (${num(p.k)}, ${num(p.c)})`;
    let s = `${what}: epoch ${num(p.epoch)}/${num(p.epochs)}`;
    if (num(p.batches_per_epoch)) s += `, batch ${num(p.batch)}/${num(p.batches_per_epoch)}`;
    if (p.running_accuracy !== undefined) s += `, accuracy ${pct(p.running_accuracy)}`;
    return s;
  }

  // Follows the job with the events long poll; fetches the whole job after each persisted event.
  async function jobPage(id) {
    app.dataset.page = 'job';
    const parts = { title: el('h1', {}, id), facts: el('div'), live: el('p', { className: 'live' }),
      grid: el('div'), candidates: el('div'), final: el('div'), artifacts: el('div') };
    app.replaceChildren(parts.title, parts.facts, parts.live, el('h2', {}, 'Search path'), parts.grid,
      el('h2', {}, 'Candidates'), parts.candidates, el('h2', {}, 'Final training'), parts.final,
      el('h2', {}, 'Artifacts'), parts.artifacts);
    const base = '/api/v1/jobs/' + encodeURIComponent(id);
    let cursor = null;
    for (;;) {
      try {
        const q = cursor ? `?sequence=${cursor.sequence}&progress=${cursor.progress}&wait_ms=10000` : '';
        const r = await getJson(base + '/events' + q);
        cursor = { sequence: r.sequence, progress: r.progress };
        const progress = r.events.filter((e) => e.progress);
        const preparing = r.events.filter((e) => e.preparation);
        if (progress.length) parts.live.textContent = liveText(progress[progress.length - 1].progress);
        else if (preparing.length) parts.live.textContent = preparationText(preparing[preparing.length - 1].preparation);
        if (preparing.length) app.dataset.preparation = String(num(preparing[preparing.length - 1].preparation.images_done));
        if (r.events.length > progress.length + preparing.length) renderJob(await getJson(base), parts);
        if (r.ended) { parts.live.textContent = ''; app.dataset.ended = 'true'; return; }
      } catch (err) {
        showError(parts.live, err);
        if (/unknown|not found/i.test(String(err.message))) { app.dataset.state = 'NOT_FOUND'; return; }
        await sleep(2000);
      }
    }
  }

  // ---- workers
  function workersPage() {
    app.dataset.page = 'workers';
    document.title = 'nanonas: workers';
    const body = el('div');
    app.replaceChildren(el('h1', {}, 'Workers'), body);
    refresh('workers', async () => {
      const data = await getJson('/api/v1/workers');
      app.dataset.workers = String(data.workers.length);
      if (!data.workers.length) { body.replaceChildren(el('p', { className: 'muted' }, 'No worker registered.')); return; }
      body.replaceChildren(table(['worker', 'address', 'slots busy', 'cores', 'memory budget', 'last heartbeat', 'running', 'version'],
        data.workers.map((w) => el('tr', { className: 'worker' }, td(w.id), td(w.address),
          td(num(w.used_slots) + ' / ' + Math.max(1, num(w.slots)) + (w.said_busy ? ' (said busy)' : ''), true), td(w.cores, true),
          td(bytes(w.memory_budget_bytes), true), td(dur(w.seconds_since_heartbeat) + ' ago', true),
          el('td', {}, w.evaluations.map((e) => el('div', {}, jobLink(e.job_id),
            e.final_training ? ' final training' : ` (${e.k}, ${e.c})`, e.speculative ? ' ahead' : '',
            ' ', el('span', { className: 'muted' }, dur(e.seconds))))),
          td(w.version)))));
    }, 2000);
  }

  // ---- datasets
  function datasetsPage() {
    app.dataset.page = 'datasets';
    document.title = 'nanonas: datasets';
    const body = el('div');
    app.replaceChildren(el('h1', {}, 'Datasets'), body);
    refresh('datasets', async () => {
      const data = await getJson('/api/v1/datasets');
      app.dataset.datasets = String(data.datasets.length);
      if (!data.datasets.length) { body.replaceChildren(el('p', { className: 'muted' }, 'No dataset yet.')); return; }
      body.replaceChildren(table(['dataset', 'source', 'size', 'images', 'classes', 'jobs'],
        data.datasets.map((d) => el('tr', { className: 'dataset' }, td(d.id), td(d.source), td(bytes(d.size_bytes), true),
          td(d.num_images, true), td(d.class_names.length + ': ' + d.class_names.join(', ')),
          el('td', {}, d.jobs.map((j) => el('div', {}, jobLink(j.id, j.name), ' ', badge(j.state),
            j.role === 'test' ? ' (test set)' : '')))))));
    }, 5000);
  }

  const path = location.pathname;
  const m = /^\/jobs\/([^/]+)$/.exec(path);
  if (m) jobPage(decodeURIComponent(m[1]));
  else if (path === '/workers') workersPage();
  else if (path === '/datasets') datasetsPage();
  else jobsPage();
})();
