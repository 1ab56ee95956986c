// PinCLIP Stream gallery: plain JS, no build step, no CDN. Talks only to this API.
// Routes (in the URL hash, so Back works): #/ (recent pins), #/search?q=…, #/pin/<id>.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "pinclip.apiKey";
const RECENT_EVERY_MS = 3000;
let objectUrls = [];

// --- talking to the API -----------------------------------------------------------------------

function authHeaders() {
  const key = localStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
  });
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (response.status === 401) {
    $("key-button").hidden = false;
    askForKey();
  }
  if (!response.ok) {
    const message = body && body.title ? `${body.title}: ${body.detail || ""}` : response.statusText;
    const error = new Error(message);
    error.problem = body;
    throw error;
  }
  return body;
}

// With a key, <img src> cannot send it: fetch the bytes and show them from a blob URL.
async function setImage(img, url, title) {
  img.alt = title || "pin image";
  if (!localStorage.getItem(KEY_STORE)) {
    img.src = url;
    return;
  }
  try {
    const response = await fetch(url, { headers: authHeaders() });
    if (!response.ok) return;
    const blobUrl = URL.createObjectURL(await response.blob());
    objectUrls.push(blobUrl);
    img.src = blobUrl;
  } catch (_) {
    /* the card keeps its placeholder */
  }
}

function releaseImages() {
  objectUrls.forEach((u) => URL.revokeObjectURL(u));
  objectUrls = [];
}

// --- rendering ----------------------------------------------------------------------------------

function showError(message) {
  const el = $("error");
  el.textContent = message || "";
  el.hidden = !message;
}

function status(message) {
  $("status").textContent = message;
}

function card(pin, extra) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  const link = node.querySelector(".card-link");
  link.href = `#/pin/${encodeURIComponent(pin.pin_id)}`;
  link.setAttribute("aria-label", `${pin.title || pin.pin_id}${extra.label ? ", " + extra.label : ""}`);
  node.querySelector(".card-title").textContent = pin.title || pin.pin_id;
  node.querySelector(".card-meta").textContent = extra.meta || "";
  const boards = node.querySelector(".card-boards");
  (pin.boards || []).slice(0, 3).forEach((board) => {
    const chip = document.createElement("span");
    chip.className = "chip" + ((extra.shared || []).includes(board) ? " shared" : "");
    chip.textContent = board;
    if ((extra.shared || []).includes(board)) chip.title = "shared with the pin you opened";
    boards.appendChild(chip);
  });
  setImage(node.querySelector("img"), pin.image_url, pin.title);
  node.dataset.pinId = pin.pin_id;
  return node;
}

// `describe(item)` → the line under the title (score, or time to searchable).
function renderResults(items, title, hint, describe, withShared) {
  releaseImages();
  $("results-title").textContent = title;
  $("results-hint").textContent = hint;
  const list = $("results");
  list.replaceChildren(
    ...items.map((item) =>
      card(item, {
        meta: describe(item),
        label: describe(item),
        shared: withShared ? item.shared_boards || [] : [],
      })
    )
  );
  if (!items.length) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = "No pins found.";
    list.appendChild(empty);
  }
}

const byScore = (hit) => `score ${hit.score.toFixed(3)}`;
const byLatency = (pin) => `searchable ${Math.round(pin.latency_ms)} ms after creation`;

function setModelVersion(version) {
  $("model-version").textContent = version == null ? "none yet" : `v${version}`;
}

// --- views --------------------------------------------------------------------------------------

async function showSearch(q) {
  $("pin-view").hidden = true;
  $("q").value = q;
  status(`Searching for “${q}”…`);
  const answer = await api(`/search/text?${new URLSearchParams({ q, k: "24" })}`);
  setModelVersion(answer.model_version);
  renderResults(
    answer.results,
    `Pins for “${q}”`,
    `model v${answer.model_version} · ${answer.consistency} consistency`,
    byScore,
    false
  );
  status(`${answer.results.length} pins for “${q}”.`);
}

async function showImageSearch(file) {
  $("pin-view").hidden = true;
  status(`Searching by image ${file.name}…`);
  const answer = await api("/search/image?k=24", {
    method: "POST",
    body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" },
  });
  setModelVersion(answer.model_version);
  renderResults(
    answer.results,
    `Pins like ${file.name}`,
    `model v${answer.model_version} · ${answer.consistency} consistency`,
    byScore,
    false
  );
  status(`${answer.results.length} pins like ${file.name}.`);
}

async function showPin(pinId) {
  status("Loading pin…");
  const [pin, similar] = await Promise.all([
    api(`/pins/${encodeURIComponent(pinId)}`),
    api(`/pins/${encodeURIComponent(pinId)}/similar?k=12`),
  ]);
  setModelVersion(similar.model_version);
  $("pin-view").hidden = false;
  $("pin-title").textContent = pin.title || pin.pin_id;
  $("pin-description").textContent = pin.description || "";
  $("pin-id").textContent = pin.pin_id;
  $("pin-boards").replaceChildren(
    ...pin.boards.map((b) => Object.assign(document.createElement("span"), { className: "chip", textContent: b }))
  );
  $("pin-version").textContent = `v${pin.model_version}${pin.embedded ? "" : " (not embedded yet)"}`;
  $("pin-embedded").textContent = pin.embedded_at ? new Date(pin.embedded_at).toLocaleString() : "—";
  renderResults(
    similar.results,
    "Nearest neighbours",
    `by embedding · model v${similar.model_version} · ${similar.consistency} · highlighted boards are shared`,
    byScore,
    true
  );
  await setImage($("pin-image"), pin.image_url, pin.title);
  document.title = `${pin.title || pin.pin_id} · PinCLIP Stream`;
  status(`${similar.results.length} neighbours of ${pin.title || pin.pin_id}.`);
  $("main").focus({ preventScroll: true });
}

async function showHome() {
  $("pin-view").hidden = true;
  const answer = await api("/recent?limit=24");
  renderResults(
    answer.pins,
    "Newest pins",
    "search by text or image, or open a pin to see its neighbours",
    byLatency,
    false
  );
  status(answer.pins.length ? "" : "No pins embedded yet: stream some pins, then search.");
}

async function route() {
  showError("");
  document.title = "PinCLIP Stream gallery";
  const hash = location.hash.slice(1) || "/";
  try {
    if (hash.startsWith("/pin/")) await showPin(decodeURIComponent(hash.slice(5)));
    else if (hash.startsWith("/search?")) await showSearch(new URLSearchParams(hash.slice(8)).get("q") || "");
    else await showHome();
  } catch (error) {
    status("");
    showError(error.message);
  }
}

// --- the recently-embedded strip ------------------------------------------------------------------

const seen = new Set();

async function refreshRecent() {
  let answer;
  try {
    answer = await api("/recent?limit=12");
  } catch (_) {
    return;
  }
  setModelVersion(answer.model_version);
  $("recent-source").textContent = answer.pins.length ? `live from ${answer.source}` : "waiting for the stream…";
  const strip = $("recent-strip");
  const items = answer.pins.map((pin) => {
    const node = card(pin, { meta: `${Math.round(pin.latency_ms)} ms to searchable` });
    node.querySelector("img").loading = "eager";
    if (seen.size && !seen.has(pin.pin_id)) node.classList.add("new");
    return node;
  });
  answer.pins.forEach((p) => seen.add(p.pin_id));
  strip.replaceChildren(...items);
}

// --- inputs -----------------------------------------------------------------------------------

function askForKey() {
  const dialog = $("key-dialog");
  if (!dialog.open) dialog.showModal();
}

function wire() {
  $("text-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("q").value.trim();
    if (q) location.hash = `#/search?${new URLSearchParams({ q })}`;
  });
  const zone = $("drop-zone");
  const search = (file) => file && showImageSearch(file).catch((e) => showError(e.message));
  $("image-input").addEventListener("change", (e) => search(e.target.files[0]));
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    search(e.dataTransfer.files[0]);
  });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      $("image-input").click();
    }
  });
  $("key-button").addEventListener("click", askForKey);
  $("key-dialog").addEventListener("close", () => {
    if ($("key-dialog").returnValue === "save") {
      localStorage.setItem(KEY_STORE, $("key-input").value);
      route();
      refreshRecent();
    }
  });
  window.addEventListener("hashchange", route);
}

wire();
route();
refreshRecent();
setInterval(refreshRecent, RECENT_EVERY_MS);
