// The anisoflow dashboard (docs/dashboard.md): the runs and their live results from
// anisoflow-gateway's JSON API (docs/gateway.md), refreshed by its WebSocket pushes. Plots are
// uPlot (canvas): cheap enough to redraw at 10 results per second.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";

const CURVE_REFRESH_MS = 500; // curves are fetched at most this often (pushes carry no curves)
const HEALTH_REFRESH_MS = 2000;
const RECONNECT_MS = 1000;
const EPS_R_MIN_ANGSTROM = 2.0;

const state = {
  runId: null, // the run shown
  chosenByUser: false, // follow the newest run until the user picks one
  runs: [],
  history: [], // convergence points of the run shown
  charts: {},
  curvesDue: false,
  lastCurves: 0,
  // How the page keeps up (the browser test reads it): pushes handled and the longest one.
  stats: { pushes: 0, maxPushMs: 0 },
};

const $ = (id) => document.getElementById(id);

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) {
    throw new Error(`${path}: HTTP ${response.status}`);
  }
  return response.json();
}

// 4 significant digits in exponent form, "-" for unknown: how the page shows every number.
export function formatNumber(value) {
  return value === null || value === undefined || Number.isNaN(value)
    ? "-"
    : Number(value).toExponential(3);
}

function setNumber(id, value) {
  const element = $(id);
  element.textContent = formatNumber(value);
  element.dataset.value = value === null || value === undefined ? "" : String(value);
}

// Axis ticks with enough digits for small numbers (alpha ~ 1e-3): exponent form below 0.01.
function ticks(plot, values) {
  const span = Math.max(...values.map((v) => Math.abs(v ?? 0)));
  return values.map((v) => (v === null ? "" : span !== 0 && span < 0.01 ? v.toExponential(2) : String(+v.toPrecision(4))));
}

function chart(id, xLabel, series, scales) {
  const element = $(id);
  const options = {
    width: Math.max(320, element.clientWidth),
    height: 240,
    scales: { x: { time: false }, ...scales },
    axes: [
      { label: xLabel },
      { label: series[0].axis, scale: series[0].scale || "y", values: ticks, size: 60 },
      ...(series.some((s) => s.scale === "y2")
        ? [{ side: 1, scale: "y2", label: series.find((s) => s.scale === "y2").axis, grid: { show: false }, values: ticks, size: 60 }]
        : []),
    ],
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, scale: s.scale || "y", dash: s.dash, spanGaps: false }))],
    legend: { live: false },
  };
  const data = [[], ...series.map(() => [])];
  const plot = new uPlot(options, data, element);
  state.charts[id] = plot;
  return plot;
}

function createCharts() {
  chart("plot-convergence", "frames (P + N)", [
    { label: "alpha", axis: "alpha (dimensionless)", color: "#1f5fa8" },
    { label: "alpha + stderr", axis: "", color: "#8fb0d8", dash: [4, 4] },
    { label: "alpha - stderr", axis: "", color: "#8fb0d8", dash: [4, 4] },
  ]);
  chart("plot-sq", "Q (1/angstrom)", [
    { label: "S0", axis: "S0 (dimensionless)", color: "#1f5fa8" },
    { label: "S2", axis: "S2 (dimensionless)", color: "#c4452c", scale: "y2" },
  ]);
  chart("plot-gr", "r (angstrom)", [
    { label: "g0", axis: "g0 (dimensionless)", color: "#1f5fa8" },
    { label: "g2", axis: "g2, alpha r dg0/dr (dimensionless)", color: "#c4452c", scale: "y2" },
    { label: "alpha r dg0/dr", axis: "", color: "#2c9a4b", scale: "y2", dash: [6, 3] },
  ]);
  chart("plot-eps", "r (angstrom)", [{ label: "eps(r)", axis: "strain (dimensionless)", color: "#7a3fa0" }]);
  window.addEventListener("resize", () => {
    for (const [id, plot] of Object.entries(state.charts)) {
      plot.setSize({ width: Math.max(320, $(id).clientWidth), height: 240 });
    }
  });
}

function showSummary(summary) {
  setNumber("alpha", summary.alpha);
  setNumber("alpha-stderr", summary.alpha_stderr);
  setNumber("eps-aff", summary.eps_aff);
  setNumber("eps-aff-stderr", summary.eps_aff_stderr);
  $("r-c").textContent =
    summary.r_c_angstrom === null || summary.r_c_angstrom === undefined ? "none" : Number(summary.r_c_angstrom).toFixed(2);
  $("mechanism").textContent = summary.mechanism;
  const frames = summary.frames_received || {};
  $("frames").textContent = `${summary.n_frames_p} / ${summary.n_frames_n}`;
  $("frames").title = `received: data P ${frames.data_p}, data N ${frames.data_n}, dark ${frames.dark}, flat ${frames.flat}`;
  document.body.dataset.resultRun = state.runId;
}

function showConvergence() {
  const x = state.history.map((p) => p.frames_p + p.frames_n);
  const alpha = state.history.map((p) => p.alpha);
  const high = state.history.map((p) => p.alpha + p.alpha_stderr);
  const low = state.history.map((p) => p.alpha - p.alpha_stderr);
  state.charts["plot-convergence"].setData([x, alpha, high, low]);
}

function curve(curves, name) {
  return curves[name] || { x: [], value: [] };
}

// Curves of different grids share a plot's x: each series on the first curve's x (same grid
// from the same analysis), missing ones as empty.
function showCurves(curves) {
  const s0 = curve(curves, "s0");
  const s2 = curve(curves, "s2");
  state.charts["plot-sq"].setData([s0.x, s0.value, s2.value.length === s0.x.length ? s2.value : s0.x.map(() => null)]);
  const g0 = curve(curves, "g0");
  const g2 = curve(curves, "g2");
  const affine = curve(curves, "affine_g2");
  const same = (c) => (c.value.length === g0.x.length ? c.value : g0.x.map(() => null));
  state.charts["plot-gr"].setData([g0.x, g0.value, same(g2), same(affine)]);
  // eps(r) below ~2 angstrom divides by a g0 that is ~0 (no atoms there): not shown.
  const eps = curve(curves, "eps_r");
  const first = eps.x.findIndex((r) => r >= EPS_R_MIN_ANGSTROM);
  const from = first < 0 ? eps.x.length : first;
  state.charts["plot-eps"].setData([eps.x.slice(from), eps.value.slice(from)]);
  document.body.dataset.curvesShown = String(Date.now());
}

// Diverging colour (blue - white - red) of t in [-1, 1]: the sign of P - N at a glance.
function diverging(t) {
  const x = Math.max(-1, Math.min(1, t));
  const white = [247, 247, 247];
  const end = x >= 0 ? [178, 24, 43] : [33, 102, 172];
  const f = Math.abs(x);
  return white.map((w, i) => Math.round(w + (end[i] - w) * f));
}

// The P - N cake (the seed paper's Fig. 1c): colour scale symmetric about 0 at the 98th
// percentile of |value|, so one hot cell does not wash the rest out.
function showCake(image) {
  const canvas = $("cake");
  const rows = image.values.length;
  const columns = rows > 0 ? image.values[0].length : 0;
  if (rows === 0 || columns === 0) {
    return;
  }
  const magnitudes = image.values.flat().filter((v) => v !== null).map(Math.abs).sort((a, b) => a - b);
  const scale = magnitudes.length > 0 ? magnitudes[Math.floor(0.98 * (magnitudes.length - 1))] || 1e-12 : 1;
  canvas.width = columns;
  canvas.height = rows;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(columns, rows);
  for (let r = 0; r < rows; r += 1) {
    for (let c = 0; c < columns; c += 1) {
      const value = image.values[r][c];
      const [red, green, blue] = value === null ? [210, 210, 210] : diverging(value / scale);
      const at = 4 * (r * columns + c);
      pixels.data[at] = red;
      pixels.data[at + 1] = green;
      pixels.data[at + 2] = blue;
      pixels.data[at + 3] = 255;
    }
  }
  context.putImageData(pixels, 0, 0);
  $("cake-high").textContent = `+${scale.toExponential(1)}`;
  $("cake-low").textContent = `-${scale.toExponential(1)}`;
  $("cake-q-min").textContent = image.q[0].toFixed(2);
  $("cake-q-max").textContent = image.q[image.q.length - 1].toFixed(2);
  canvas.dataset.cells = String(rows * columns);
}

async function refreshCake() {
  try {
    const image = await getJson(`/api/runs/${encodeURIComponent(state.runId)}/cake`);
    if (image.run_id === state.runId) {
      showCake(image);
    }
  } catch (error) {
    // No image yet (single-orientation runs have none).
  }
}

async function refreshCurves() {
  if (!state.runId) {
    return;
  }
  state.lastCurves = Date.now();
  state.curvesDue = false;
  try {
    const result = await getJson(`/api/runs/${encodeURIComponent(state.runId)}/result`);
    if (result.run_id === state.runId) {
      showSummary(result.summary);
      showCurves(result.curves);
      if (state.hasImage) {
        await refreshCake();
      }
    }
  } catch (error) {
    // No result yet for this run: the next push brings one.
  }
}

function scheduleCurves() {
  if (state.curvesDue) {
    return;
  }
  state.curvesDue = true;
  const wait = Math.max(0, CURVE_REFRESH_MS - (Date.now() - state.lastCurves));
  setTimeout(refreshCurves, wait);
}

async function showRun(runId) {
  let hasResult = false;
  state.runId = runId;
  document.body.dataset.runId = runId || "";
  if (!runId) {
    return;
  }
  try {
    const run = await getJson(`/api/runs/${encodeURIComponent(runId)}`);
    $("run-state").textContent = run.state;
    hasResult = run.results > 0;
    state.hasImage = run.has_image === true;
    state.history = run.history || [];
    showConvergence();
    const log = $("run-log");
    log.replaceChildren(
      ...(run.log || []).map((entry) => {
        const item = document.createElement("li");
        const orientation = entry.kind === "data" ? ` ${entry.orientation}` : "";
        item.textContent = `${entry.change.replace("_", " ")}: ${entry.kind}${orientation} from frame ${entry.next_sequence}${entry.note ? ` (${entry.note})` : ""}`;
        return item;
      }),
    );
  } catch (error) {
    $("run-state").textContent = "archived"; // listed from the archive directory only
    state.history = [];
    showConvergence();
  }
  if (hasResult) {
    await refreshCurves(); // else the first push brings it
  }
}

function showRuns(runs) {
  state.runs = runs;
  const select = $("run-select");
  const current = state.runId;
  select.replaceChildren(
    ...runs.map((run) => {
      const option = document.createElement("option");
      option.value = run.run_id;
      option.textContent = `${run.run_id} (${run.state})`;
      return option;
    }),
  );
  const live = runs.find((run) => run.state !== "archived");
  const wanted = state.chosenByUser && current ? current : (live || runs[0] || {}).run_id;
  if (wanted) {
    select.value = wanted;
  }
  if (wanted !== current) {
    showRun(wanted);
  }
}

function count(value, digits = 1) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
}

// Frames per second, queue depth and frames through every stage, from the services' metrics
// as the gateway scrapes them (/api/pipeline); lost frames must stay 0.
async function refreshPipeline() {
  try {
    const pipeline = await getJson("/api/pipeline");
    const body = $("stages").querySelector("tbody");
    body.replaceChildren(
      ...pipeline.stages.map((stage) => {
        const row = document.createElement("tr");
        row.className = stage.up ? "" : "bad";
        for (const text of [
          stage.instance,
          stage.up ? count(stage.frames_per_s) : "down",
          count(stage.queue_depth, 0),
          count(stage.frames_total, 0),
        ]) {
          const cell = document.createElement("td");
          cell.textContent = text;
          row.append(cell);
        }
        row.title = stage.up ? stage.address : stage.error;
        return row;
      }),
    );
    const lost = $("frames-lost");
    lost.textContent = `${pipeline.frames_lost} frames lost`;
    lost.className = pipeline.frames_lost > 0 ? "lost bad" : "lost";
    document.body.dataset.stages = String(pipeline.stages.length);
  } catch (error) {
    // The gateway is away: the connection badge says so.
  }
}

async function refreshHealth() {
  try {
    const health = await getJson("/api/health");
    const body = $("health").querySelector("tbody");
    body.replaceChildren(
      ...health.services.map((service) => {
        const row = document.createElement("tr");
        row.className = service.stale || service.state === "degraded" ? "bad" : "";
        for (const text of [
          `${service.service} ${service.instance}`,
          service.state,
          `${service.age_s.toFixed(1)} s ago`,
        ]) {
          const cell = document.createElement("td");
          cell.textContent = text;
          row.append(cell);
        }
        return row;
      }),
    );
  } catch (error) {
    // The gateway is away: the connection badge says so.
  }
}

function onPush(message) {
  const begin = performance.now();
  handlePush(message);
  state.stats.pushes += 1;
  state.stats.maxPushMs = Math.max(state.stats.maxPushMs, performance.now() - begin);
}

function handlePush(message) {
  if (message.type === "hello") {
    showRuns(message.runs);
    return;
  }
  if (message.type !== "result") {
    return;
  }
  if (!state.runs.some((run) => run.run_id === message.run_id)) {
    getJson("/api/runs").then(showRuns).catch(() => {});
    return;
  }
  if (message.run_id !== state.runId) {
    return;
  }
  showSummary(message.summary);
  state.hasImage = message.has_image;
  state.history.push(message.point);
  showConvergence();
  if (message.is_final) {
    $("run-state").textContent = "final result";
    getJson("/api/runs").then(showRuns).catch(() => {});
  }
  scheduleCurves();
}

function connect() {
  const badge = $("connection");
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`);
  socket.onopen = () => {
    badge.textContent = "live";
    badge.className = "badge live";
  };
  socket.onmessage = (event) => onPush(JSON.parse(event.data));
  socket.onclose = () => {
    badge.textContent = "reconnecting";
    badge.className = "badge";
    setTimeout(connect, RECONNECT_MS);
  };
}

// For the browser test (tests/browser): what the page holds, without scraping canvases.
window.anisoflowDashboard = state;

createCharts();
$("run-select").addEventListener("change", (event) => {
  state.chosenByUser = true;
  showRun(event.target.value);
});
getJson("/api/runs").then(showRuns).catch(() => {});
refreshHealth();
refreshPipeline();
setInterval(refreshHealth, HEALTH_REFRESH_MS);
setInterval(refreshPipeline, HEALTH_REFRESH_MS);
connect();
