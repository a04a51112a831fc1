// musicstore dashboard: charts and the waveform, drawn on <canvas> from data the server sent (no framework).
"use strict";

const COLORS = { created: "#3b5bdb", completed: "#2b8a3e", failed: "#c92a2a" };

function drawBars(canvas, chart) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  const series = new Map(chart.series);
  const names = Array.from(series.keys());
  const n = chart.labels.length;
  let max = 1;
  for (const values of series.values()) for (const v of values) max = Math.max(max, v);
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#667085";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(String(max), 2, 12);
  ctx.fillText("0", 2, h - pad + 4);
  const slot = Math.min(60, (w - pad) / Math.max(n, 1)), bar = Math.max(1, (slot - 2) / names.length);
  chart.labels.forEach((label, i) => {
    names.forEach((name, j) => {
      const v = series.get(name)[i];
      const bh = (h - pad - 8) * v / max;
      ctx.fillStyle = COLORS[name] || "#555";
      ctx.fillRect(pad + i * slot + j * bar, h - pad - bh, bar, bh);
    });
    if (n <= 31 && (i % Math.ceil(n / 12) === 0)) {
      ctx.fillStyle = "#667085";
      ctx.fillText(label.slice(-5), pad + i * slot, h - 10);
    }
  });
  let x = w - 8;
  for (const name of names.slice().reverse()) {
    const tw = ctx.measureText(name).width;
    x -= tw + 18;
    ctx.fillStyle = COLORS[name] || "#555";
    ctx.fillRect(x, 4, 10, 10);
    ctx.fillStyle = "#1d2433";
    ctx.fillText(name, x + 14, 13);
  }
}

function drawWaveform(canvas, peaks, progress) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, mid = h / 2;
  const n = peaks.length / 2;
  let top = 0.05;  // drawn to the loudest peak, so that a quiet clip is visible too
  for (const v of peaks) top = Math.max(top, Math.abs(v));
  const scale = 0.95 / top;
  ctx.clearRect(0, 0, w, h);
  for (let x = 0; x < w; x++) {
    const i = Math.min(n - 1, Math.floor(x * n / w));
    const lo = peaks[2 * i], hi = peaks[2 * i + 1];
    ctx.fillStyle = x / w <= progress ? "#3b5bdb" : "#98a2b3";
    ctx.fillRect(x, mid - hi * scale * mid, 1, Math.max(1, (hi - lo) * scale * mid));
  }
}

async function setupWaveform(canvas) {
  const audio = document.getElementById("audio");
  const response = await fetch(canvas.dataset.peaks, { credentials: "same-origin" });
  if (!response.ok) {
    canvas.dataset.state = "unavailable";
    return;
  }
  const data = await response.json();
  const redraw = () => drawWaveform(canvas, data.peaks, audio && audio.duration ? audio.currentTime / audio.duration : 0);
  redraw();
  canvas.dataset.state = "drawn";
  if (audio) {
    audio.addEventListener("timeupdate", redraw);
    canvas.addEventListener("click", (event) => {
      if (!audio.duration) return;
      const rect = canvas.getBoundingClientRect();
      audio.currentTime = audio.duration * (event.clientX - rect.left) / rect.width;
    });
  }
}

function setupAudio(audio) {
  const out = document.getElementById("audio-duration");
  const show = () => {
    if (out && Number.isFinite(audio.duration)) out.textContent = audio.duration.toFixed(2) + " s";
    audio.dataset.duration = String(audio.duration);
  };
  audio.addEventListener("loadedmetadata", show);
  if (audio.readyState >= 1) show();
}

document.addEventListener("DOMContentLoaded", () => {
  const data = document.getElementById("chart-data");
  if (data) {
    const charts = JSON.parse(data.textContent);
    for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
      drawBars(canvas, charts[canvas.dataset.chart]);
      canvas.dataset.state = "drawn";
    }
  }
  const audio = document.getElementById("audio");
  if (audio) setupAudio(audio);
  const waveform = document.getElementById("waveform");
  if (waveform) setupWaveform(waveform);
});
