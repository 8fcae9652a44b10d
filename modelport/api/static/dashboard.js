/* modelport dashboard: plain JS, no build step. Model data is only ever set as textContent. */
"use strict";

const KEY_STORAGE = "modelport.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const $ = (sel) => document.querySelector(sel);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function fmt(value, digits = 2) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  return Math.abs(value) >= 1000 || Number.isInteger(value)
    ? value.toLocaleString("en", { maximumFractionDigits: digits })
    : value.toPrecision(4);
}

function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

/* ------------------------------------------------------------------ REST */

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.error && data.error.message;
    throw new Error(message || `${method} ${path} answered ${response.status}`);
  }
  return { status: response.status, data };
}

/* ------------------------------------------------------------------ WebSocket */

class Live {
  constructor() {
    this.handlers = {};
    this.subscriptions = new Map(); // key -> message, re-sent after a reconnect
    this.delay = 1000;
    this.connect();
  }

  on(event, handler) {
    (this.handlers[event] = this.handlers[event] || []).push(handler);
  }

  get open() {
    return this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const token = apiKey() ? `?token=${encodeURIComponent(apiKey())}` : "";
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${location.host}/ws${token}`);
    } catch (_) {
      return this.retry();
    }
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 1000;
      setStatus("live", "ok");
      for (const message of this.subscriptions.values()) ws.send(JSON.stringify(message));
    };
    ws.onmessage = (msg) => {
      let parsed;
      try {
        parsed = JSON.parse(msg.data);
      } catch (_) {
        return;
      }
      for (const handler of this.handlers[parsed.event] || []) handler(parsed.data || {});
    };
    ws.onclose = () => {
      setStatus("offline (polling)", "");
      this.retry();
    };
  }

  retry() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, 30000);
  }

  reconnect() {
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
    this.delay = 1000;
    this.connect();
  }

  subscribe(key, event, data) {
    const message = { event, data };
    this.subscriptions.set(key, message);
    if (this.open) this.ws.send(JSON.stringify(message));
  }

  unsubscribe(key, event, data) {
    if (!this.subscriptions.delete(key)) return;
    if (this.open) this.ws.send(JSON.stringify({ event, data }));
  }
}

function setStatus(text, state) {
  const pill = $("#ws-status");
  pill.textContent = text;
  pill.className = `pill ${state}`;
}

const live = new Live();

/* ------------------------------------------------------------------ jobs */

function showError(id, error) {
  const box = $(id);
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function showProgress(box, job) {
  box.hidden = false;
  box.querySelector(".job-id").textContent = `job ${job.jobId}`;
  box.querySelector(".stage").textContent = job.stage || job.status || "";
  if (typeof job.progress === "number") box.querySelector("progress").value = job.progress;
}

/* Submit, then follow the job: live progress over /ws, the outcome by long-polling. */
async function runJob(path, body, box) {
  const first = await api("POST", path, body);
  if (first.status === 200) {
    showProgress(box, { jobId: "(cached)", stage: "done", progress: 1 });
    return first.data;
  }
  let job = first.data;
  const jobId = job.jobId;
  box.dataset.jobId = jobId;
  showProgress(box, job);
  const onProgress = (data) => {
    if (data.jobId === jobId) showProgress(box, { ...data, jobId });
  };
  live.on("job_progress", onProgress);
  live.subscribe(`job:${jobId}`, "subscribe_job", { jobId });
  try {
    while (!TERMINAL.has(job.status)) {
      job = (await api("GET", `/api/jobs/${encodeURIComponent(jobId)}?wait=5`)).data;
      showProgress(box, job);
    }
  } finally {
    live.unsubscribe(`job:${jobId}`, "unsubscribe_job", { jobId });
    const list = live.handlers.job_progress;
    list.splice(list.indexOf(onProgress), 1);
  }
  if (job.status !== "succeeded") {
    const message = (job.error && job.error.message) || `the job ended as ${job.status}`;
    throw new Error(message);
  }
  return job.result;
}

function fillList(id, items, empty) {
  const list = $(id);
  list.replaceChildren();
  for (const item of items) list.append(el("li", item));
  if (!items.length && empty) list.append(el("li", empty, "muted"));
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

async function withButton(formOrButton, action) {
  const button =
    formOrButton.tagName === "BUTTON" ? formOrButton : formOrButton.querySelector("button");
  button.disabled = true;
  try {
    await action();
  } finally {
    button.disabled = false;
  }
}

/* ------------------------------------------------------------------ generate */

function showFiles(files) {
  const tabs = $("#file-tabs");
  const pre = $("#file-content");
  tabs.replaceChildren();
  const names = Object.keys(files);
  const select = (name) => {
    for (const tab of tabs.children) tab.setAttribute("aria-selected", tab.dataset.name === name);
    pre.textContent = files[name];
  };
  for (const name of names) {
    const tab = el("button", name, "tab");
    tab.type = "button";
    tab.dataset.name = name;
    tab.setAttribute("role", "tab");
    tab.addEventListener("click", () => select(name));
    tabs.append(tab);
  }
  if (names.length) select(names.includes("Dockerfile") ? "Dockerfile" : names[0]);
}

$("#generate-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const values = formData(form);
  const body = {
    modelUrl: values.modelUrl.trim(),
    options: {
      batchSize: Number(values.batchSize),
      memory: values.memory.trim() || undefined,
      gpu: form.gpu.checked,
      optimizationLevel: values.optimizationLevel,
    },
  };
  showError("#generate-error", null);
  $("#generate-result").hidden = true;
  generateBundle(body, form.querySelector("button"));
});

function generateBundle(body, button) {
  withButton(button, async () => {
    try {
      const result = await runJob("/api/generate", body, $("#generate-job"));
      const validation = result.validation || {};
      const status = $("#validation-status");
      status.textContent = validation.status || "unknown";
      status.className = `pill ${validation.status || ""}`;
      fillList("#validation-messages", [
        ...(validation.errors || []).map((e) => `error: ${typeof e === "string" ? e : JSON.stringify(e)}`),
        ...(validation.warnings || []).map((w) => `warning: ${typeof w === "string" ? w : JSON.stringify(w)}`),
      ]);
      showFiles(result.files || {});
      $("#generate-result").hidden = false;
    } catch (error) {
      showError("#generate-error", error);
    }
  });
}

/* ------------------------------------------------------------------ benchmark */

const PLOT_CONFIG = { responsive: true, displaylogo: false };

function barChart(id, sizes, values, title, unit) {
  const layout = {
    title: { text: title, font: { size: 14 } },
    xaxis: { title: { text: "batch size" }, type: "category" },
    yaxis: { title: { text: unit }, rangemode: "tozero" },
    margin: { t: 40, r: 10, b: 45, l: 60 },
    height: 260,
  };
  const trace = { x: sizes.map(String), y: values, type: "bar", marker: { color: "#3b6fd8" } };
  Plotly.newPlot(id, [trace], layout, PLOT_CONFIG);
}

$("#benchmark-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const values = formData(form);
  const sizes = values.batchSizes.split(/[\s,]+/).filter(Boolean).map(Number);
  const body = {
    modelId: values.modelId.trim(),
    batchSizes: sizes,
    iterations: Number(values.iterations),
    warmup: Number(values.warmup),
    sequenceLength: Number(values.sequenceLength),
    device: values.device,
    optimizationLevel: values.optimizationLevel,
  };
  if (values.latencySloMs) body.latencySloMs = Number(values.latencySloMs);
  if (form.search.checked) body.search = true;
  const clients = (values.servedConcurrency || "").split(/[\s,]+/).filter(Boolean).map(Number);
  if (clients.length) body.servedConcurrency = clients;
  const delays = (values.batchDelaysMs || "").split(/[\s,]+/).filter(Boolean).map(Number);
  if (delays.length) body.batchDelaysMs = delays;
  showError("#benchmark-error", null);
  $("#benchmark-result").hidden = true;
  $("#search-result").hidden = true;
  $("#served-result").hidden = true;
  delete $("#benchmark-job").dataset.jobId;
  withButton(form, async () => {
    try {
      const result = await runJob("/api/benchmark", body, $("#benchmark-job"));
      const r = result.results || {};
      const analysis = result.analysis || {};
      $("#benchmark-result").hidden = false; // Plotly sizes charts from visible divs
      $("#optimal-batch").textContent = fmt(analysis.optimal_batch_size);
      barChart("chart-throughput", sizes, r.throughput || [], "Throughput", "samples/s");
      barChart("chart-latency", sizes, r.latency || [], "Latency (mean per batch)", "ms");
      barChart("chart-memory", sizes, r.memory_usage || [], "Peak memory", "MB");
      barChart("chart-cost", sizes, r.cost_per_inference || [], "Cost per inference", "USD");
      fillList("#benchmark-recommendations", analysis.resource_recommendations || [], "None.");
      if (result.search) showSearch(result.search, body.modelId, $("#benchmark-job").dataset.jobId);
      if (result.served) showServed(result.served);
    } catch (error) {
      showError("#benchmark-error", error);
    }
  });
});

/* The bundle's server at each concurrency, and what it adds over in-process. */
function showServed(served) {
  const rows = $("#served-table tbody");
  rows.replaceChildren();
  for (const level of served.levels || []) {
    const tr = el("tr");
    const latency = level.latencyMs || {};
    tr.append(
      el("td", String(level.concurrency), "num"),
      el("td", String(level.requests), "num"),
      el("td", String(level.errors), level.errors ? "num fail" : "num"),
      el("td", fmt(level.throughput, 1), "num"),
      el("td", fmt(latency.p50, 1), "num"),
      el("td", fmt(latency.p95, 1), "num"),
      el("td", fmt(latency.p99, 1), "num"),
    );
    rows.append(tr);
  }
  const delays = $("#delays-table tbody");
  delays.replaceChildren();
  for (const run of served.delays || []) {
    const tr = el("tr", null, run.maxDelayMs === served.maxDelayMs ? "recommended" : null);
    tr.append(
      el("td", String(run.maxDelayMs), "num"),
      el("td", fmt(run.bestThroughput, 1), "num"),
      el("td", fmt(run.worstP95Ms, 1), "num"),
      el("td", run.meetsObjective ? "yes" : "no", run.meetsObjective ? null : "fail"),
    );
    delays.append(tr);
  }
  $("#delay-sentence").textContent = served.delaySentence || "";
  $("#delays-result").hidden = !(served.delays || []).length;
  $("#served-summary").textContent = served.error
    ? `Not measured: ${served.error}`
    : `Max batch size ${served.maxBatchSize}, batching delay ${fmt(served.maxDelayMs)} ms, ` +
      `ready in ${fmt(served.readyS, 1)} s; the server ` +
      `adds ${fmt(served.addedP50Ms, 1)} ms p50 to a single predict, and its best rate is ` +
      `${fmt(served.throughputVsInProcess, 2)}x the in-process one; it held ` +
      `${fmt(served.serverMemoryMb, 0)} MB and filled batches of ${fmt(served.meanBatchSize)} ` +
      `inputs on average.`;
  $("#served-result").hidden = false;
}

function qualityText(cell) {
  if (cell.metric === "reference") return "float32 reference";
  if (cell.passed === null || cell.passed === undefined) return "skipped";
  const value = typeof cell.value === "number" ? cell.value.toFixed(4) : cell.value;
  return `${cell.passed ? "passed" : "FAILED"}: ${cell.metric} ${value}`;
}

/* A search's table, fastest first, and "generate this" for its recommendation. */
function showSearch(search, modelId, jobId) {
  const rows = $("#search-table tbody");
  rows.replaceChildren();
  for (const c of search.configurations) {
    const tr = el("tr");
    if (c.recommended) tr.className = "recommended";
    else if (!c.qualified) tr.className = "rejected";
    tr.append(
      el("td", c.recommended ? "\u2605" : c.pareto ? "\u25C6" : ""),
      el("td", c.optimizationLevel),
      el("td", String(c.batchSize), "num"),
      el("td", fmt(c.throughput, 1), "num"),
      el("td", fmt(c.latencyP95Ms, 1), "num"),
      el("td", fmt(c.memoryMb, 0), "num"),
      el("td", c.costPerMillion == null ? "-" : c.costPerMillion.toPrecision(3), "num"),
      el("td", qualityText(c.quality), c.quality.passed === false ? "fail" : ""),
      el("td", c.rejectedBecause.join("; "), "why"),
    );
    rows.append(tr);
  }
  $("#search-sentence").textContent = search.sentence;
  const button = $("#generate-this");
  button.hidden = !(search.recommended && jobId);
  button.dataset.modelId = modelId;
  button.dataset.jobId = jobId || "";
  $("#search-result").hidden = false;
}

$("#generate-this").addEventListener("click", (event) => {
  const button = event.target;
  const body = { modelUrl: button.dataset.modelId, fromBenchmark: button.dataset.jobId };
  showError("#generate-error", null);
  $("#generate-result").hidden = true;
  $("#generate").scrollIntoView();
  generateBundle(body, button);
});

/* ------------------------------------------------------------------ monitoring */

const STAT_ROWS = [
  ["throughput", "throughput (samples/s)", "p95"],
  ["latency", "latency (ms)", "p95"],
  ["memory_usage", "memory (MB)", "max"],
  ["costs", "cost per inference (USD)", "total"],
];

function trendText(stat, detail) {
  const direction = (stat && stat.trend) || "–";
  const change = detail && typeof detail.change_pct === "number" ? ` (${detail.change_pct.toFixed(1)}%)` : "";
  return direction + change;
}

function showStatistics(answer) {
  const body = $("#monitor-stats tbody");
  body.replaceChildren();
  for (const [key, label, second] of STAT_ROWS) {
    const stat = (answer.statistics || {})[key];
    if (!stat) continue;
    const row = el("tr");
    const trend = el("td", trendText(stat, (answer.trends || {})[key]), `trend ${stat.trend || ""}`);
    row.append(el("td", label), el("td", fmt(stat.mean)), el("td", `${fmt(stat[second])} ${second}`), trend);
    body.append(row);
  }
}

let watchedModel = null;

function watchAlerts(modelId) {
  if (watchedModel && watchedModel !== modelId) {
    live.unsubscribe(`model:${watchedModel}`, "unsubscribe_metrics", { modelId: watchedModel });
  }
  watchedModel = modelId;
  $("#alerts").dataset.subscribed = "";
  live.subscribe(`model:${modelId}`, "subscribe_metrics", { modelId, metrics: ["latency"] });
}

live.on("subscribed", (data) => {
  if (data.modelId && data.modelId === watchedModel) $("#alerts").dataset.subscribed = data.modelId;
});

live.on("alert", (data) => {
  const list = $("#alerts");
  const empty = list.querySelector(".muted");
  if (empty) empty.remove();
  const item = el("li", null, `alert ${data.severity || ""}`);
  item.append(
    el("span", data.severity || "alert", "pill"),
    el("strong", ` ${data.type || ""} `),
    el("span", data.message || ""),
    el("span", ` — ${data.modelId || ""} · ${new Date().toLocaleTimeString()}`, "muted"),
  );
  list.prepend(item);
  while (list.children.length > 50) list.lastElementChild.remove();
});

live.on("error", (data) => console.warn("websocket:", data.message));

$("#monitor-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const values = formData(form);
  const modelId = values.modelId.trim();
  showError("#monitor-error", null);
  watchAlerts(modelId);
  withButton(form, async () => {
    try {
      const { data } = await api("POST", "/api/monitor", { modelId, days: Number(values.days) });
      $("#monitor-result").hidden = false;
      showStatistics(data);
      for (const name of ["performance_over_time", "resource_usage", "cost_analysis"]) {
        const div = document.getElementById(`plot-${name}`);
        const figure = (data.plots || {})[name];
        if (figure) {
          const layout = {
            ...figure.layout,
            height: 320,
            margin: { t: 50, r: 70, b: 50, l: 70 },
            legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" },
          };
          Plotly.newPlot(div, figure.data, layout, PLOT_CONFIG);
        } else {
          Plotly.purge(div);
        }
      }
      fillList("#monitor-recommendations", data.recommendations || [], "None.");
    } catch (error) {
      showError("#monitor-error", error);
    }
  });
});

/* ------------------------------------------------------------------ API key */

const keyInput = $("#api-key");
keyInput.value = apiKey();
keyInput.addEventListener("change", () => {
  const value = keyInput.value.trim();
  if (value) localStorage.setItem(KEY_STORAGE, value);
  else localStorage.removeItem(KEY_STORAGE);
  live.reconnect();
});
