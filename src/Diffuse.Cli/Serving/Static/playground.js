'use strict';
// The playground of diffuse serve: plain JavaScript against the server's own API, nothing loaded from elsewhere.
const $ = id => document.getElementById(id);
const state = { models: [], model: null, alphaBar: [], examples: [], noise: null, frames: [], controller: null, isImage: true };

function headers(json) {
  const h = {};
  if (json) h['Content-Type'] = 'application/json';
  const key = $('api-key').value;
  if (key) h['X-Api-Key'] = key;
  return h;
}

async function errorOf(response) {
  let message = `HTTP ${response.status}`;
  try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
  if (response.status === 401) $('key-label').hidden = false;
  return new Error(message);
}

async function api(path, body) {
  const response = await fetch(path, body === undefined ? { headers: headers(false) } : { method: 'POST', headers: headers(true), body: JSON.stringify(body) });
  if (!response.ok) throw await errorOf(response);
  return response;
}

function showError(error) { $('error').textContent = error.message || String(error); $('error').hidden = false; }
function clearError() { $('error').hidden = true; $('error').textContent = ''; }
function fmt(x) { return !isFinite(x) ? '∞' : Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toFixed(4); }

async function init() {
  clearError();
  try {
    state.models = (await (await api('/v1/models')).json()).models;
  } catch (e) { showError(e); return; }
  const select = $('model');
  select.replaceChildren(...state.models.map(m => new Option(m.name, m.name)));
  await selectModel(state.models[0].name);
}

async function selectModel(name) {
  clearError();
  const m = state.models.find(x => x.name === name);
  state.model = m;
  state.isImage = m.kind === 'image';
  $('model-info').textContent = `${m.kind} ${m.shape.join('×')}` + (m.classes.length ? `, ${m.classes.length} classes` : '') +
    `, ${m.formulation} (${m.prediction}), ${m.schedule} schedule, T = ${m.timesteps}; default sampler: ${m.defaultSampler.description}`;
  const conditional = state.isImage && m.classes.length > 0;
  $('class-label').hidden = !conditional;
  $('guidance-label').hidden = !conditional;
  $('class').replaceChildren(new Option('every class (one row each)', ''), ...m.classes.map((c, i) => new Option(`${i} ${c}`, String(i))));
  if (m.defaultGuidance != null) $('guidance').value = m.defaultGuidance;
  $('sampler').replaceChildren(...m.samplers.map(s => new Option(s, s)));
  $('sampler').value = m.defaultSampler.sampler;
  $('steps').value = Math.min(m.defaultSampler.steps, state.isImage ? 20 : 100);
  $('count').value = state.isImage ? (conditional ? m.classes.length * 2 : 16) : 1000;
  state.alphaBar = (await (await api(`/v1/models/${encodeURIComponent(name)}/schedule`)).json()).alphaBar;
  $('t').max = state.alphaBar.length;
  $('t').value = 0;
  updateRequest();
  await loadExamples();
}

// ---- forward process -------------------------------------------------------------------------------------------

// A seeded standard normal generator (mulberry32 + Box–Muller), so that dragging t keeps the same ε.
function gaussian(seed) {
  let a = seed >>> 0;
  const uniform = () => { a = (a + 0x6D2B79F5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

function decodePng(dataUrl) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const c = document.createElement('canvas');
      c.width = img.width; c.height = img.height;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      resolve(ctx.getImageData(0, 0, img.width, img.height));
    };
    img.onerror = () => reject(new Error('an image did not decode'));
    img.src = dataUrl;
  });
}

async function loadExamples() {
  const m = state.model;
  const select = $('example');
  state.examples = [];
  try {
    if (state.isImage) {
      // Test images of the data set when the server has them cached, else the model's own samples.
      let images = null, note = 'Examples are the model\'s own samples (seed 1234): this server has no copy of its data set.';
      const examples = await fetch(`/v1/models/${encodeURIComponent(m.name)}/examples`, { headers: headers(false) });
      if (examples.ok) {
        const json = await examples.json();
        images = json.images;
        note = `Examples are the first test images of ${json.source}.`;
      } else {
        const body = { count: m.classes.length ? m.classes.length : 8, sampler: 'dpm++2m', steps: 10, seed: 1234, format: 'png' };
        images = (await (await api(`/v1/models/${encodeURIComponent(m.name)}/samples`, body)).json()).images;
      }
      for (const image of images) {
        const data = await decodePng('data:image/png;base64,' + image.png);
        const channels = m.shape[0], x0 = new Float32Array(data.width * data.height * channels);
        for (let p = 0; p < data.width * data.height; p++)
          for (let c = 0; c < channels; c++) x0[p * channels + c] = data.data[p * 4 + c] / 127.5 - 1;
        state.examples.push({ name: image.name, x0, width: data.width, height: data.height, channels });
      }
      $('example-note').textContent = note;
    } else {
      const json = await (await api(`/v1/models/${encodeURIComponent(m.name)}/samples`, { count: 1000, seed: 1234, format: 'json', sampler: 'euler', steps: 50 })).json();
      const rows = json.rows, d = rows[0].length;
      const mean = new Array(d).fill(0), std = new Array(d).fill(0);
      for (const r of rows) for (let k = 0; k < d; k++) mean[k] += r[k] / rows.length;
      for (const r of rows) for (let k = 0; k < d; k++) std[k] += (r[k] - mean[k]) ** 2 / rows.length;
      const x0 = rows.map(r => r.map((v, k) => (v - mean[k]) / Math.sqrt(std[k] || 1)));
      state.examples.push({ name: `point cloud: 1000 samples (${json.columns.slice(0, 2).join(', ')}), standardised`, points: x0 });
      $('example-note').textContent = 'The cloud is the model\'s own samples, standardised as the model sees its data.';
    }
  } catch (e) { showError(e); return; }
  select.replaceChildren(...state.examples.map((e, i) => new Option(e.name, String(i))));
  pickExample(0);
}

function pickExample(i) {
  const e = state.examples[i];
  const n = e.points ? e.points.length * e.points[0].length : e.x0.length;
  const draw = gaussian(1000 + i);
  state.noise = Float32Array.from({ length: n }, draw);
  drawForward();
}

function drawForward() {
  const e = state.examples[Number($('example').value) || 0];
  if (!e) return;
  const t = Number($('t').value);
  const alphaBar = t === 0 ? 1 : state.alphaBar[t - 1];
  const a = Math.sqrt(alphaBar), s = Math.sqrt(1 - alphaBar);
  $('t-value').textContent = `t = ${t} of ${state.alphaBar.length}`;
  $('alpha-bar').textContent = fmt(alphaBar);
  $('snr').textContent = fmt(alphaBar / (1 - alphaBar));
  $('signal').textContent = fmt(a);
  $('noise').textContent = fmt(s);
  const canvas = $('forward-canvas'), ctx = canvas.getContext('2d');
  if (e.points) {
    scatter(canvas, e.points.map((p, r) => p.map((v, k) => a * v + s * state.noise[r * p.length + k])), 4);
    return;
  }
  const image = new ImageData(e.width, e.height);
  for (let p = 0; p < e.width * e.height; p++) {
    for (let c = 0; c < 3; c++) {
      const k = p * e.channels + (e.channels === 1 ? 0 : c);
      const z = a * e.x0[k] + s * state.noise[k];
      image.data[p * 4 + c] = Math.round(Math.min(1, Math.max(0, (z + 1) / 2)) * 255);
    }
    image.data[p * 4 + 3] = 255;
  }
  const small = document.createElement('canvas');
  small.width = e.width; small.height = e.height;
  small.getContext('2d').putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function scatter(canvas, points, limit) {
  const ctx = canvas.getContext('2d'), w = canvas.width, h = canvas.height;
  ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = '#ddd'; ctx.beginPath(); ctx.moveTo(w / 2, 0); ctx.lineTo(w / 2, h); ctx.moveTo(0, h / 2); ctx.lineTo(w, h / 2); ctx.stroke();
  ctx.fillStyle = 'rgba(31, 90, 180, 0.55)';
  for (const p of points) ctx.fillRect((p[0] / limit + 1) * w / 2 - 1, (1 - p[1] / limit) * h / 2 - 1, 2.5, 2.5);
}

// ---- sampling ---------------------------------------------------------------------------------------------------

function requestBody() {
  const m = state.model, body = {};
  const int = id => $(id).value.trim() === '' ? undefined : Number($(id).value);
  body.count = int('count');
  if (state.isImage && m.classes.length) {
    if ($('class').value !== '') body.class = Number($('class').value);
    body.guidance = int('guidance');
  }
  body.sampler = $('sampler').value;
  body.steps = int('steps');
  body.seed = int('seed');
  body.format = state.isImage ? 'grid' : 'json';
  return body;
}

function updateRequest() {
  const m = state.model, body = requestBody();
  const origin = window.location.origin;
  const key = $('api-key').value ? " -H 'X-Api-Key: $DIFFUSE_API_KEY'" : '';
  $('curl').textContent = `curl -X POST ${origin}/v1/models/${m.name}/samples -H 'Content-Type: application/json'${key} -d '${JSON.stringify(body)}' -o samples.${state.isImage ? 'png' : 'json'}`;
  const flags = [`--model ${m.name}`];
  if (body.count !== undefined) flags.push(`--count ${body.count}`);
  if (body.class !== undefined) flags.push(`--class ${body.class}`);
  if (body.guidance !== undefined) flags.push(`--guidance ${body.guidance}`);
  flags.push(`--sampler ${body.sampler}`);
  if (body.steps !== undefined) flags.push(`--steps ${body.steps}`);
  if (body.seed !== undefined) flags.push(`--seed ${body.seed}`);
  flags.push(`--out samples.${state.isImage ? 'png' : 'csv'}`);
  $('command').textContent = `diffuse sample ${flags.join(' ')}`;
}

// Reads server-sent events from a fetch response body and hands each (name, data) to onEvent.
async function readEvents(body, onEvent) {
  const reader = body.getReader(), decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      onEvent(name, JSON.parse(data));
    }
  }
}

async function sample() {
  clearError();
  const m = state.model, body = requestBody();
  updateRequest();
  state.controller = new AbortController();
  state.frames = [];
  $('run').disabled = true; $('cancel').disabled = false;
  $('progress').value = 0;
  $('status').textContent = 'sending …';
  $('step').disabled = true;
  try {
    const response = await fetch(`/v1/models/${encodeURIComponent(m.name)}/samples`, {
      method: 'POST', headers: headers(true), body: JSON.stringify({ ...body, stream: true, preview: true }), signal: state.controller.signal,
    });
    if (!response.ok) throw await errorOf(response);
    let result = null;
    await readEvents(response.body, (name, data) => {
      if (name === 'queued') $('status').textContent = `queued (${data.waiting} waiting); ${data.sampler}`;
      else if (name === 'progress') {
        $('progress').value = data.step / data.steps;
        $('status').textContent = `step ${data.step} of ${data.steps}`;
        state.frames.push({ z: data.z, x0: data.x0 });
      } else if (name === 'result') result = data;
      else if (name === 'error') throw new Error(data.error.message);
    });
    if (!result) throw new Error('the server closed the stream without a result');
    showResult(result);
    $('status').textContent = `done: ${result.sampler}, batch of ${result.batch} samples`;
    $('step').max = state.frames.length;
    $('step').value = state.frames.length;
    $('step').disabled = state.frames.length === 0;
    showStep();
  } catch (e) {
    if (e.name === 'AbortError') $('status').textContent = 'cancelled';
    else { $('status').textContent = 'failed'; showError(e); }
  } finally {
    $('run').disabled = false; $('cancel').disabled = true;
    state.controller = null;
  }
}

function showResult(result) {
  if (result.contentType === 'image/png') {
    $('result').src = 'data:image/png;base64,' + result.data;
    $('result').hidden = false; $('result-scatter').hidden = true;
  } else {
    const json = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(result.data), c => c.charCodeAt(0))));
    const rows = json.rows, limit = Math.max(...rows.flatMap(r => [Math.abs(r[0]), Math.abs(r[1] ?? 0)])) * 1.1 || 1;
    scatter($('result-scatter'), rows, limit);
    $('result-scatter').hidden = false; $('result').hidden = true;
  }
}

function showStep() {
  const i = Number($('step').value), frame = state.frames[i - 1];
  if (!frame) return;
  $('step-value').textContent = `step ${i} of ${state.frames.length}`;
  for (const [key, img, canvas] of [['z', 'z-image', 'z-scatter'], ['x0', 'x0-image', 'x0-scatter']]) {
    if (typeof frame[key] === 'string') { $(img).src = frame[key]; $(img).hidden = false; $(canvas).hidden = true; }
    else if (frame[key]) { scatter($(canvas), frame[key], 4); $(canvas).hidden = false; $(img).hidden = true; }
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('model').addEventListener('change', e => selectModel(e.target.value));
  $('api-key').addEventListener('change', init);
  $('example').addEventListener('change', e => pickExample(Number(e.target.value)));
  $('t').addEventListener('input', drawForward);
  $('step').addEventListener('input', showStep);
  $('run').addEventListener('click', sample);
  $('cancel').addEventListener('click', () => state.controller?.abort());
  for (const id of ['class', 'guidance', 'sampler', 'steps', 'count', 'seed']) $(id).addEventListener('input', updateRequest);
  init();
});
