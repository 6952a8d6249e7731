// The "where is this?" page: one to four photos in, the predicted point, the cell probabilities and
// (for a calibrated model) the search region out.
// Everything is served by geoguess serve itself (Leaflet included); tiles only when asked for.
"use strict";

const HEADINGS = ["0", "90", "180", "270"];
const MAX_PHOTOS = 4;      // one per heading slot; photos of unknown heading take the free ones
const views = {};          // heading -> Blob
let loose = [];            // photos of unknown heading: [{ blob, name }]
let truth = null;          // [lat, lon] of a sample location, when known
let cellsLayer = null;
let markers = null;
let tileLayer = null;
const baseLayers = [];     // the land around Croatia and Croatia itself, filled unless tiles are shown
const cellsByModel = {};   // model -> its cells (GeoJSON), each with a name

const $ = (id) => document.getElementById(id);
const map = L.map("map", { zoomSnap: 0.25 }).setView([44.6, 16.4], 7);
markers = L.layerGroup().addTo(map);
// The base map, drawn offline: other countries' land under Croatia, both over the tiles (when
// shown) and under the cells.
map.createPane("land").style.zIndex = 250;
map.createPane("croatia").style.zIndex = 260;
const LAND_STYLE = { color: "#aaa", weight: 0.6, fillColor: "#e2ded2", fillOpacity: 1 };
const CROATIA_STYLE = { color: "#444", weight: 1, fillColor: "#f4f1e8", fillOpacity: 1 };
// The search region: a dashed blue outline over a faint fill, over the cells and under the points.
map.createPane("region").style.zIndex = 450;
map.createPane("points").style.zIndex = 460;
const REGION_STYLE = { color: "#1f5fd6", weight: 2.5, dashArray: "6 4", fillColor: "#3a7bff", fillOpacity: 0.15 };
const cellsGroup = L.layerGroup().addTo(map);    // the cells coloured by their probability
const regionGroup = L.layerGroup().addTo(map);   // the search region of the answer on show
L.control.layers(null, {
  '<span class="swatch cells"></span>cell probabilities': cellsGroup,
  '<span class="swatch region"></span>search region': regionGroup,
}, { collapsed: false }).addTo(map);

// With the tiles on, the base map keeps its borders but not its fill, so the tiles show through.
function fillBase(filled) {
  for (const layer of baseLayers) layer.setStyle({ fillOpacity: filled ? 1 : 0 });
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function setView(heading, blob, name) {
  views[heading] = blob;
  const img = $("photo-" + heading);
  const empty = $("empty-" + heading);
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  img.dataset.url = URL.createObjectURL(blob);
  img.onload = () => { img.hidden = false; empty.hidden = true; };
  img.onerror = () => {  // e.g. a format the browser cannot show; the server may still read it
    img.hidden = true;
    empty.hidden = false;
    empty.className = "empty error";
    empty.textContent = `cannot show ${name || "this file"} here`;
  };
  img.src = img.dataset.url;
  img.title = name || "";
  updateButton();
}

function clearView(heading) {
  delete views[heading];
  const img = $("photo-" + heading);
  const empty = $("empty-" + heading);
  img.onload = img.onerror = null;
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  delete img.dataset.url;
  img.removeAttribute("src");
  img.hidden = true;
  img.title = "";
  empty.hidden = false;
  empty.className = "empty";
  empty.textContent = "no photo yet";
  $("file-" + heading).value = "";
}

// The photos of unknown heading, shown as small pictures under the four slots.
function setLoose(list) {
  const box = $("loose");
  for (const img of box.querySelectorAll("img")) URL.revokeObjectURL(img.src);
  box.replaceChildren();
  loose = list;
  for (const { blob, name } of loose) {
    const img = document.createElement("img");
    img.alt = "photo of unknown heading";
    img.title = name || "";
    img.src = URL.createObjectURL(blob);
    box.appendChild(img);
  }
  if (!loose.length) $("file-unknown").value = "";
  updateButton();
}

function clearPhotos() {
  for (const h of HEADINGS) clearView(h);
  setLoose([]);
}

function photoCount() {
  return HEADINGS.filter((h) => views[h]).length + loose.length;
}

function updateButton() {
  const count = photoCount();
  $("count").textContent = !count ? "No photo yet."
    : `${count} of ${MAX_PHOTOS} photos chosen${count > MAX_PHOTOS ? ": too many, send at most four" : "."}`;
  $("locate").disabled = !(count >= 1 && count <= MAX_PHOTOS && $("model").value);
}

function headingOf(name) {
  const match = /^(0|90|180|270)(\D|$)/.exec(name.replace(/^.*[\\/]/, ""));
  return match ? match[1] : null;
}

// A drop is a new place: its photos replace those chosen before. Photos named by their headings go
// to their slots; four unnamed ones are taken in heading order; fewer are of unknown heading.
function takeFiles(files) {
  const list = Array.from(files).filter((f) => f.type.startsWith("image/"));
  if (list.length < 1 || list.length > MAX_PHOTOS) {
    setStatus(`Drop one to four photos (got ${list.length}).`, true);
    return;
  }
  const named = list.map((f) => headingOf(f.name));
  const byName = new Set(named).size === list.length && named.every((h) => h !== null);
  clearPhotos();
  truth = null;
  if (byName || list.length === MAX_PHOTOS) {
    list.forEach((file, i) => setView(byName ? named[i] : HEADINGS[i], file, file.name));
    setStatus(byName ? "Photos placed by their names." : "Photos placed in the order dropped.");
  } else {
    setLoose(list.map((file) => ({ blob: file, name: file.name })));
    setStatus(`${list.length === 1 ? "The photo is" : "The photos are"} taken as of unknown heading.`);
  }
}

async function api(path, options) {
  const response = await fetch(path, options);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

function haversineKm(a, b) {
  const rad = Math.PI / 180;
  const dlat = (b[0] - a[0]) * rad, dlon = (b[1] - a[1]) * rad;
  const h = Math.sin(dlat / 2) ** 2 + Math.cos(a[0] * rad) * Math.cos(b[0] * rad) * Math.sin(dlon / 2) ** 2;
  return 2 * 6371.0088 * Math.asin(Math.sqrt(h));
}

function colour(p, top) {
  const t = top > 0 ? Math.min(1, p / top) : 0;
  return `rgba(210, 40, 40, ${0.05 + 0.75 * t})`;
}

async function cellsOf(model) {
  if (!cellsByModel[model]) cellsByModel[model] = await api(`/models/${encodeURIComponent(model)}/cells`);
  return cellsByModel[model];
}

// A cell's name from the server (the nearest place and its class point), or its class point.
function cellName(cells, cell) {
  const feature = cells && cells.features[cell.class_index];
  if (feature && feature.properties.class_index === cell.class_index && feature.properties.name) {
    return feature.properties.name;
  }
  return `cell at ${cell.latitude.toFixed(3)}, ${cell.longitude.toFixed(3)}`;
}

async function drawCells(model, probabilities) {
  if (cellsLayer) { cellsGroup.removeLayer(cellsLayer); cellsLayer = null; }
  if (!probabilities) return;
  const cells = await cellsOf(model);
  const top = Math.max(...probabilities);
  cellsLayer = L.geoJSON(cells, {
    style: (feature) => ({
      weight: 0.5, color: "#733",
      fillColor: colour(probabilities[feature.properties.class_index], top), fillOpacity: 1,
    }),
    onEachFeature: (feature, layer) => layer.bindTooltip(
      `${feature.properties.name}: ${(100 * probabilities[feature.properties.class_index]).toFixed(1)} %`),
  }).addTo(cellsGroup);
}

function percent(coverage) {
  return `${Number((100 * coverage).toFixed(1))}\u00a0%`;
}

// An area for people: three significant digits, "12,600 km²".
function areaText(km2) {
  const rounded = Number(km2.toPrecision(3));
  return `${rounded >= 100 ? rounded.toLocaleString("en-US", { maximumFractionDigits: 0 }) : rounded}\u00a0km²`;
}

// The answer's search region (null: the model is not calibrated), drawn and said in words.
function showRegion(region) {
  regionGroup.clearLayers();
  const line = $("region");
  if (!region) {
    line.className = "none";
    line.textContent = "no search region: the model is not calibrated (geoguess calibrate)";
    return;
  }
  line.className = "";
  const properties = region.geojson.properties || {};
  let text = `search region (${percent(region.coverage)}): `;
  if (region.area_km2 === null) {
    text += "unbounded (the validation split is too small for this coverage)";
  } else {
    text += areaText(region.area_km2);
    if (Array.isArray(properties.cells)) {
      text += ` (${properties.cells.length} ${properties.cells.length === 1 ? "cell" : "cells"})`;
    } else if (properties.radius_km) {
      text += ` (within ${Number(properties.radius_km.toPrecision(3))} km of the point)`;
    }
  }
  line.textContent = text;
  if (region.geojson.geometry) {
    L.geoJSON(region.geojson, {
      pane: "region", interactive: false, className: "search-region", style: () => REGION_STYLE,
    }).addTo(regionGroup);
  }
}

function showResult(result, cells) {
  $("result").hidden = false;
  $("lat").textContent = result.latitude.toFixed(5);
  $("lon").textContent = result.longitude.toFixed(5);
  $("took").textContent = `(${result.timing.total_ms.toFixed(0)} ms, model ${result.model})`;
  $("views-used").textContent = String(result.views_used);
  $("headings").textContent = (result.headings || [])
    .map((h) => (h === "unknown" ? "heading unknown" : `${h}°`)).join(", ");
  const list = $("top5");
  list.replaceChildren();
  for (const cell of result.top_cells || []) {
    const item = document.createElement("li");
    item.textContent = `${cellName(cells, cell)}: ${(100 * cell.probability).toFixed(1)}\u00a0%`;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, 120 * cell.probability)}px`;
    item.appendChild(bar);
    list.appendChild(item);
  }
  markers.clearLayers();
  const predicted = [result.latitude, result.longitude];
  L.circleMarker(predicted, { pane: "points", radius: 8, color: "#000", weight: 2, fillColor: "#ffcc00", fillOpacity: 1 })
    .bindTooltip("predicted").addTo(markers);
  $("truth").hidden = !truth;
  if (truth) {
    $("truth-lat").textContent = truth[0].toFixed(5);
    $("truth-lon").textContent = truth[1].toFixed(5);
    $("error-km").textContent = haversineKm(predicted, truth).toFixed(1);
    L.circleMarker(truth, { pane: "points", radius: 7, color: "#000", weight: 2, fillColor: "#22aa44", fillOpacity: 1 })
      .bindTooltip("true position").addTo(markers);
    L.polyline([predicted, truth], { pane: "points", color: "#222", dashArray: "4 4" }).addTo(markers);
  }
  map.setView(predicted, Math.max(map.getZoom(), 7));
}

async function locate() {
  const model = $("model").value;
  const form = new FormData();
  for (const h of HEADINGS) if (views[h]) form.append(h, views[h], `${h}.jpg`);
  loose.forEach(({ blob, name }, i) => form.append("photo", blob, name || `photo-${i + 1}.jpg`));
  $("locate").disabled = true;
  setStatus("Locating…");
  try {
    const coverage = encodeURIComponent($("coverage").value);
    const result = await api(`/models/${encodeURIComponent(model)}/predict?probabilities=true&region=${coverage}`,
      { method: "POST", body: form });
    let cells = null;
    if (result.top_cells) {
      try { cells = await cellsOf(model); } catch (error) { /* named by their points instead */ }
    }
    showResult(result, cells);
    showRegion(result.region);
    await drawCells(model, result.probabilities);
    setStatus("Done.");
  } catch (error) {  // e.g. a model that needs all four headings: the server says so
    $("result").hidden = true;  // no answer of an earlier request stays on show
    markers.clearLayers();
    regionGroup.clearLayers();
    await drawCells(model, null);
    setStatus(error.message, true);
  } finally {
    updateButton();
  }
}

async function randomLocation() {
  try {
    const location = await api("/sample/random");
    clearPhotos();
    for (const h of HEADINGS) {
      const response = await fetch(location.views[h]);
      if (!response.ok) throw new Error(`photo ${h} of ${location.uuid}: HTTP ${response.status}`);
      setView(h, await response.blob(), `${location.uuid}/${h}.jpg`);
    }
    truth = location.latitude === null || location.latitude === undefined ? null
      : [location.latitude, location.longitude];
    setStatus(`Sample location ${location.uuid}.`);
    await locate();
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function start() {
  const [config, models] = await Promise.all([api("/config"), api("/models")]);
  const select = $("model");
  for (const entry of models.models) {
    const option = document.createElement("option");
    option.value = entry.name;
    option.textContent = `${entry.name} (${entry.task}, ${entry.backbone}, ${entry.image_size} px`
      + `${entry.calibrated ? ", calibrated" : ""})`;
    select.appendChild(option);
  }
  if (!models.models.length) setStatus("No usable checkpoint in the models folder.", true);
  $("random").hidden = !config.sample;
  $("tiles-choice").hidden = !config.tiles;
  const [land, outline] = await Promise.all(
    ["/land", "/outline"].map((path) => api(path).catch(() => null)));  // the page works without them
  for (const [shape, pane, style] of [[land, "land", LAND_STYLE], [outline, "croatia", CROATIA_STYLE]]) {
    if (shape) baseLayers.push(L.geoJSON(shape, { pane, interactive: false, style }).addTo(map));
  }
  fillBase(!$("tiles").checked);
  document.body.dataset.ready = "true";
}

for (const h of HEADINGS) {
  $("file-" + h).addEventListener("change", (event) => {
    const file = event.target.files[0];
    truth = null;
    if (file) setView(h, file, file.name);
    else { clearView(h); updateButton(); }
  });
}
$("file-unknown").addEventListener("change", (event) => {
  truth = null;
  setLoose(Array.from(event.target.files).map((file) => ({ blob: file, name: file.name })));
});
$("clear").addEventListener("click", () => {
  clearPhotos();
  truth = null;
  setStatus("Choose one to four photos.");
});
$("model").addEventListener("change", updateButton);
$("coverage").addEventListener("change", () => {  // the answer on show gets the region of the new coverage
  if (!$("result").hidden && !$("locate").disabled) locate();
});
$("locate").addEventListener("click", locate);
$("random").addEventListener("click", randomLocation);
$("tiles").addEventListener("change", (event) => {
  if (event.target.checked) {
    tileLayer = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png",
      { maxZoom: 18, attribution: "&copy; OpenStreetMap contributors" }).addTo(map);
  } else if (tileLayer) {
    map.removeLayer(tileLayer);
  }
  fillBase(!event.target.checked);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  takeFiles(event.dataTransfer.files);
});
start().catch((error) => setStatus(error.message, true));
