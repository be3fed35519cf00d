// chainrule web page: text generation (streamed), image samples, CSV forecasts with a fan chart, audio (WAV).
// Plain JavaScript, no build step and no external resources.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let MODELS = [];

function setStatus(id, message, isError = false) {
  const el = $(id);
  el.textContent = message;
  el.classList.toggle("error", isError);
}

async function errorOf(resp) {
  try {
    const body = await resp.json();
    return `${resp.status}: ${body.detail}`;
  } catch (e) {
    return `${resp.status} ${resp.statusText}`;
  }
}

async function postJson(path, body) {
  return fetch(path, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
}

function fillSelect(select, names) {
  select.replaceChildren(...names.map((n) => new Option(n, n)));
}

function showTab(name) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === name);
  for (const p of document.querySelectorAll(".panel")) p.classList.toggle("active", p.id === `tab-${name}`);
}

async function loadModels() {
  const resp = await fetch("/v1/models");
  if (!resp.ok) {
    $("model-count").textContent = `cannot list models (${await errorOf(resp)})`;
    return;
  }
  MODELS = (await resp.json()).models;
  const byKind = (k) => MODELS.filter((m) => m.kind === k).map((m) => m.name);
  fillSelect($("text-model"), byKind("text"));
  fillSelect($("image-model"), byKind("image"));
  fillSelect($("ts-model"), byKind("timeseries"));
  fillSelect($("audio-model"), byKind("audio"));
  $("model-count").textContent = `${MODELS.length} model(s): ${MODELS.map((m) => `${m.name} (${m.kind})`).join(", ")}`;
  updateClasses();
  updateAudioClasses();
  const tabs = {text: "text", image: "images", timeseries: "forecast", audio: "audio"};
  const first = MODELS.length ? tabs[MODELS[0].kind] ?? "text" : "text";
  showTab(first);
  document.body.dataset.ready = "1";
}

// ------------------------------------------------------------------ text
function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return {event, data: data.length ? JSON.parse(data.join("\n")) : null};
}

async function generate(ev) {
  ev.preventDefault();
  const topK = Number($("top-k").value);
  const body = {
    model: $("text-model").value || null, prompt: $("prompt").value, stream: true,
    max_new_tokens: Number($("max-tokens").value), temperature: Number($("temperature").value),
    seed: Number($("text-seed").value), top_k: topK > 0 ? topK : null,
  };
  $("echo").textContent = body.prompt;
  $("generated").textContent = "";
  $("generate").disabled = true;
  setStatus("text-status", "generating…");
  try {
    const resp = await postJson("/v1/generate", body);
    if (!resp.ok) return setStatus("text-status", await errorOf(resp), true);
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const {event, data} = parseEvent(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (event === "error") return setStatus("text-status", data.detail, true);
        if (event === "done") setStatus("text-status", `done (model ${data.model}, seed ${data.seed})`);
        else if (data && data.sample === 0) $("generated").textContent += data.text;
      }
    }
    document.body.dataset.generated = "1";
  } catch (e) {
    setStatus("text-status", `request failed: ${e}`, true);
  } finally {
    $("generate").disabled = false;
  }
}

// ------------------------------------------------------------------ images
function updateClasses() {
  const m = MODELS.find((x) => x.name === $("image-model").value);
  const options = [new Option("any", "")];
  if (m && m.num_classes > 0) {
    for (let i = 0; i < m.num_classes; i++) options.push(new Option(m.class_names[i] ?? String(i), String(i)));
  }
  $("image-class").replaceChildren(...options);
}

async function sample(ev) {
  ev.preventDefault();
  const cls = $("image-class").value;
  const body = {
    model: $("image-model").value || null, num_samples: Number($("num-images").value),
    temperature: Number($("image-temperature").value), seed: Number($("image-seed").value),
  };
  if (cls !== "") body.class = Number(cls);
  $("sample").disabled = true;
  setStatus("image-status", "sampling…");
  try {
    const resp = await postJson("/v1/sample", body);
    if (!resp.ok) return setStatus("image-status", await errorOf(resp), true);
    const old = $("samples").src;
    $("samples").src = URL.createObjectURL(await resp.blob());
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    setStatus("image-status", `${body.num_samples} samples (seed ${resp.headers.get("X-Chainrule-Seed")})`);
  } catch (e) {
    setStatus("image-status", `request failed: ${e}`, true);
  } finally {
    $("sample").disabled = false;
  }
}

// ------------------------------------------------------------------ audio
function updateAudioClasses() {
  const m = MODELS.find((x) => x.name === $("audio-model").value);
  const options = [new Option("any", "")];
  if (m && m.num_classes > 0) {
    for (let i = 0; i < m.num_classes; i++) options.push(new Option(m.class_names[i] ?? String(i), String(i)));
  }
  $("audio-class").replaceChildren(...options);
}

async function sampleAudio(ev) {
  ev.preventDefault();
  const cls = $("audio-class").value;
  const body = {
    model: $("audio-model").value || null, seconds: Number($("audio-seconds").value),
    temperature: Number($("audio-temperature").value), seed: Number($("audio-seed").value),
  };
  if (cls !== "") body.class = Number(cls);
  $("sample-audio").disabled = true;
  setStatus("audio-status", "sampling…");
  try {
    const resp = await postJson("/v1/sample", body);
    if (!resp.ok) return setStatus("audio-status", await errorOf(resp), true);
    const player = $("audio-player");
    const old = player.src;
    player.src = URL.createObjectURL(await resp.blob());
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    setStatus("audio-status", `${body.seconds} s at ${resp.headers.get("X-Chainrule-Sample-Rate")} Hz ` +
              `(seed ${resp.headers.get("X-Chainrule-Seed")})`);
    player.play().catch(() => {});  // autoplay may be refused; the controls remain
    document.body.dataset.audio = "1";
  } catch (e) {
    setStatus("audio-status", `request failed: ${e}`, true);
  } finally {
    $("sample-audio").disabled = false;
  }
}

// ------------------------------------------------------------------ forecast
const MISSING = new Set(["", "na", "nan", "null", "none", "n/a", "-"]);

function parseCsv(text) {
  // One series: the last mostly-numeric column; an optional header row and date column (its first date
  // becomes `start`). Empty or NA cells are missing values (null).
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  if (!lines.length) throw new Error("the CSV is empty");
  const delim = lines[0].includes("\t") ? "\t" : (lines[0].includes(";") && !lines[0].includes(",") ? ";" : ",");
  let rows = lines.map((l) => l.split(delim).map((c) => c.trim().replace(/^"(.*)"$/, "$1")));
  if (rows.length === 1 && rows[0].length > 1) rows = rows[0].map((c) => [c]);  // one line of values
  const isNum = (c) => c !== "" && Number.isFinite(Number(c));
  const isMissing = (c) => MISSING.has(c.toLowerCase());
  const header = rows[0].every((c) => !isNum(c)) && rows.length > 1;
  const data = header ? rows.slice(1) : rows;
  const width = Math.max(...data.map((r) => r.length));
  let col = -1;
  for (let j = width - 1; j >= 0; j--) {
    const cells = data.map((r) => r[j] ?? "");
    const numeric = cells.filter(isNum).length;
    if (numeric > 0 && numeric >= cells.filter((c) => !isMissing(c)).length * 0.9) { col = j; break; }
  }
  if (col < 0) throw new Error("no numeric column found in the CSV");
  const values = data.map((r, i) => {
    const c = r[col] ?? "";
    if (isMissing(c)) return null;
    if (!isNum(c)) throw new Error(`row ${i + 1 + (header ? 1 : 0)}: ${JSON.stringify(c)} is not a number`);
    return Number(c);
  });
  let start = null;
  if (col > 0 && data[0][0] && !isNum(data[0][0]) && !Number.isNaN(Date.parse(data[0][0]))) start = data[0][0];
  return {values, start, column: header ? rows[0][col] : null};
}

function el(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function fanChart(history, result) {
  // SVG: the last stretch of history, then nested quantile bands (outermost first) and the median line.
  const h = result.horizon ?? result.median.length;
  const shown = history.slice(-Math.max(3 * h, 60));
  const qs = Object.keys(result.quantiles).map(Number).sort((a, b) => a - b);
  const q = (p) => result.quantiles[Object.keys(result.quantiles).find((k) => Number(k) === p)];
  const median = result.median ?? q(0.5);
  const all = shown.filter((v) => v !== null).concat(median, ...qs.map((p) => q(p))).filter(Number.isFinite);
  const lo = Math.min(...all), hi = Math.max(...all);
  const W = 720, H = 300, pad = 40, n = shown.length + h;
  const x = (i) => pad + (i * (W - 2 * pad)) / Math.max(n - 1, 1);
  const y = (v) => H - pad - ((v - lo) * (H - 2 * pad)) / (hi - lo || 1);
  const svg = el("svg", {id: "fan", viewBox: `0 0 ${W} ${H}`, width: W, height: H});
  svg.append(el("line", {x1: x(shown.length - 0.5), x2: x(shown.length - 0.5), y1: pad / 2, y2: H - pad,
                         stroke: "#bbb", "stroke-dasharray": "4 3"}));
  const off = shown.length;
  for (let k = 0; k < Math.floor(qs.length / 2); k++) {
    const lower = q(qs[k]), upper = q(qs[qs.length - 1 - k]);
    const pts = upper.map((v, i) => `${x(off + i)},${y(v)}`)
      .concat(lower.map((v, i) => `${x(off + i)},${y(v)}`).reverse());
    svg.append(el("polygon", {class: "band", points: pts.join(" "), fill: "#1f77b4",
                              "fill-opacity": (0.2 + 0.2 * k).toFixed(2),
                              "data-quantiles": `${qs[k]}-${qs[qs.length - 1 - k]}`}));
  }
  const line = (vals, start, cls, color) => {
    let d = "", pen = false;
    vals.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) { pen = false; return; }
      d += `${pen ? "L" : "M"}${x(start + i).toFixed(1)},${y(v).toFixed(1)} `;
      pen = true;
    });
    svg.append(el("path", {class: cls, d: d.trim(), fill: "none", stroke: color, "stroke-width": 1.5,
                           "data-points": vals.length}));
  };
  line(shown, 0, "history", "#222");
  line(median, off, "median", "#1f4e79");
  for (const [v, t] of [[lo, H - pad], [hi, pad]]) {
    const label = el("text", {x: 4, y: t + 4, "font-size": 11, fill: "#555"});
    label.textContent = Number(v.toPrecision(4)).toString();
    svg.append(label);
  }
  $("chart").replaceChildren(svg);
}

async function forecast(ev) {
  ev.preventDefault();
  let parsed;
  try {
    parsed = parseCsv($("csv").value);
  } catch (e) {
    return setStatus("forecast-status", `CSV: ${e.message}`, true);
  }
  const body = {model: $("ts-model").value || null, history: parsed.values, seed: Number($("ts-seed").value)};
  if ($("horizon").value) body.horizon = Number($("horizon").value);
  if (parsed.start) body.start = parsed.start;
  $("forecast").disabled = true;
  setStatus("forecast-status", "forecasting…");
  try {
    const resp = await postJson("/v1/forecast", body);
    if (!resp.ok) return setStatus("forecast-status", await errorOf(resp), true);
    const result = await resp.json();
    fanChart(parsed.values, result);
    setStatus("forecast-status", `${parsed.values.length} values${parsed.column ? ` of "${parsed.column}"` : ""}` +
              ` → ${result.horizon ?? result.median.length} steps (model ${result.model})`);
  } catch (e) {
    setStatus("forecast-status", `request failed: ${e}`, true);
  } finally {
    $("forecast").disabled = false;
  }
}

function readFile() {
  const file = $("csv-file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => { $("csv").value = reader.result; setStatus("forecast-status", `loaded ${file.name}`); };
  reader.onerror = () => setStatus("forecast-status", `cannot read ${file.name}`, true);
  reader.readAsText(file);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("text-form").addEventListener("submit", generate);
  $("image-form").addEventListener("submit", sample);
  $("image-model").addEventListener("change", updateClasses);
  $("forecast-form").addEventListener("submit", forecast);
  $("audio-form").addEventListener("submit", sampleAudio);
  $("audio-model").addEventListener("change", updateAudioClasses);
  $("csv-file").addEventListener("change", readFile);
  loadModels().catch((e) => { $("model-count").textContent = `cannot list models (${e})`; });
});
