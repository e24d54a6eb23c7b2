// Tessera's web console: the admin API and the S3 API of the gateway that
// serves it, every request signed in the page with SigV4 (the secret never
// leaves the browser tab). No framework, no build step.
"use strict";

// ------------------------------------------------------------ SHA-256, HMAC

const H0 = new Uint32Array(8);
const K = new Uint32Array(64);
(() => {
  // The first 32 bits of the fractional parts of the square roots of the
  // first 8 primes (H0) and of the cube roots of the first 64 (K).
  const primes = [];
  for (let n = 2; primes.length < 64; n++) {
    if (primes.every((p) => n % p !== 0)) primes.push(n);
  }
  const frac = (x) => Math.floor((x - Math.floor(x)) * 4294967296);
  primes.forEach((p, i) => {
    if (i < 8) H0[i] = frac(Math.sqrt(p));
    K[i] = frac(Math.cbrt(p));
  });
})();

const ror = (x, n) => (x >>> n) | (x << (32 - n));

function sha256(data) {
  const len = data.length;
  const padded = ((len + 9 + 63) >> 6) << 6;
  const m = new Uint8Array(padded);
  m.set(data);
  m[len] = 0x80;
  const view = new DataView(m.buffer);
  view.setUint32(padded - 8, Math.floor(len / 0x20000000));
  view.setUint32(padded - 4, (len << 3) >>> 0);
  const h = H0.slice();
  const w = new Uint32Array(64);
  for (let off = 0; off < padded; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15], b = w[i - 2];
      const s0 = ror(a, 7) ^ ror(a, 18) ^ (a >>> 3);
      const s1 = ror(b, 17) ^ ror(b, 19) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  h.forEach((x, i) => ov.setUint32(i * 4, x));
  return out;
}

const utf8 = (s) => new TextEncoder().encode(s);
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function hmac(key, msg) {
  if (key.length > 64) key = sha256(key);
  const k = new Uint8Array(64);
  k.set(key);
  const inner = new Uint8Array(64 + msg.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = k[i] ^ 0x36;
    outer[i] = k[i] ^ 0x5c;
  }
  inner.set(msg, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

// ------------------------------------------------------------ SigV4

const REGION = "us-east-1";

// RFC 3986 encoding as SigV4 wants it; `/` kept in paths.
function enc(s, keepSlash) {
  return Array.from(utf8(s), (b) => {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === "/")) return c;
    return "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }).join("");
}

function canonicalQuery(params) {
  return Object.keys(params)
    .sort()
    .map((k) => enc(k) + "=" + enc(String(params[k])))
    .join("&");
}

function stamp() {
  const iso = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+/, "");
  return { date: iso, day: iso.slice(0, 8) };
}

function signingKey(secret, day) {
  let k = hmac(utf8("AWS4" + secret), utf8(day));
  k = hmac(k, utf8(REGION));
  k = hmac(k, utf8("s3"));
  return hmac(k, utf8("aws4_request"));
}

// Headers for a signed request: path is already encoded.
function sign(creds, method, path, params, payloadHash) {
  const { date, day } = stamp();
  const host = location.host;
  const scope = `${day}/${REGION}/s3/aws4_request`;
  const signed = "host;x-amz-content-sha256;x-amz-date";
  const canonical = [method, path, canonicalQuery(params),
    `host:${host}\nx-amz-content-sha256:${payloadHash}\nx-amz-date:${date}\n`, signed, payloadHash].join("\n");
  const toSign = ["AWS4-HMAC-SHA256", date, scope, hex(sha256(utf8(canonical)))].join("\n");
  const sig = hex(hmac(signingKey(creds.secret, day), utf8(toSign)));
  return {
    "x-amz-date": date,
    "x-amz-content-sha256": payloadHash,
    authorization: `AWS4-HMAC-SHA256 Credential=${creds.key}/${scope}, SignedHeaders=${signed}, Signature=${sig}`,
  };
}

// A presigned GET: anyone with the URL may read the object until it expires.
function presign(creds, path, seconds) {
  const { date, day } = stamp();
  const scope = `${day}/${REGION}/s3/aws4_request`;
  const params = {
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Credential": `${creds.key}/${scope}`,
    "X-Amz-Date": date,
    "X-Amz-Expires": String(seconds),
    "X-Amz-SignedHeaders": "host",
  };
  const query = canonicalQuery(params);
  const canonical = ["GET", path, query, `host:${location.host}\n`, "host", "UNSIGNED-PAYLOAD"].join("\n");
  const toSign = ["AWS4-HMAC-SHA256", date, scope, hex(sha256(utf8(canonical)))].join("\n");
  const sig = hex(hmac(signingKey(creds.secret, day), utf8(toSign)));
  return `${location.origin}${path}?${query}&X-Amz-Signature=${sig}`;
}

// ------------------------------------------------------------ calls

let creds = JSON.parse(sessionStorage.getItem("tessera-creds") || "null");

class CallError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

async function failure(r) {
  const text = await r.text();
  try {
    const j = JSON.parse(text);
    if (j.error) return new CallError(r.status, j.error.code, j.error.message);
  } catch (_) { /* not JSON */ }
  const doc = new DOMParser().parseFromString(text, "application/xml");
  const code = doc.querySelector("Code")?.textContent || `HTTP ${r.status}`;
  const message = doc.querySelector("Message")?.textContent || text.slice(0, 200);
  return new CallError(r.status, code, message);
}

// An admin call: JSON in, JSON out.
async function admin(method, path, body) {
  const text = body === undefined ? "" : JSON.stringify(body);
  const full = "/tessera/admin/v1/" + path;
  const headers = sign(creds, method, full, {}, hex(sha256(utf8(text))));
  if (text) headers["content-type"] = "application/json";
  const r = await fetch(full, { method, headers, body: text || undefined });
  if (!r.ok) throw await failure(r);
  return r.json();
}

// An S3 call; `body` is sent unsigned (UNSIGNED-PAYLOAD), as SDKs do over TLS.
async function s3(method, bucket, key, params, body) {
  const path = "/" + enc(bucket, false) + (key === undefined ? "" : "/" + enc(key, true));
  const hash = body === undefined ? hex(sha256(new Uint8Array(0))) : "UNSIGNED-PAYLOAD";
  const headers = sign(creds, method, bucket === "" ? "/" : path, params, hash);
  const query = canonicalQuery(params);
  const r = await fetch((bucket === "" ? "/" : path) + (query ? "?" + query : ""), { method, headers, body });
  if (!r.ok) throw await failure(r);
  return r;
}

async function xml(r) {
  return new DOMParser().parseFromString(await r.text(), "application/xml");
}

// ------------------------------------------------------------ rendering

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

function rows(table, list) {
  const body = $(table + " tbody");
  body.replaceChildren(...list.map((cells) => el("tr", {}, ...cells.map((c) =>
    c instanceof Node ? el("td", {}, c) : typeof c === "number" ? el("td", { class: "num" }, c) : el("td", {}, c)))));
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

const when = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 16) : "-");

function showError(e) {
  const box = $("#error");
  box.textContent = e ? String(e.message || e) : "";
  box.hidden = !e;
}

// Runs an action; its failure shows in the banner.
function guarded(f) {
  return async (ev) => {
    if (ev && ev.preventDefault) ev.preventDefault();
    try {
      showError(null);
      await f(ev);
    } catch (e) {
      showError(e);
    }
  };
}

// ------------------------------------------------------------ views

let view = "login";
let refreshTimer = null;

function show(name) {
  view = name;
  for (const s of document.querySelectorAll("section")) s.hidden = s.id !== "view-" + name;
  for (const b of document.querySelectorAll("#nav button[data-view]")) {
    b.classList.toggle("current", b.dataset.view === name || (name === "browser" && b.dataset.view === "buckets"));
  }
  $("#nav").hidden = name === "login";
  clearInterval(refreshTimer);
  if (name === "status" || name === "workers") {
    refreshTimer = setInterval(() => views[name]().catch(showError), 5000);
  }
}

const views = {
  async status() {
    const s = await admin("GET", "status");
    const m = s.metadata || {};
    $("#status-summary").textContent =
      `leader ${m.leader ?? "none"}, term ${m.term ?? "-"}, applied ${m.applied_index ?? "-"}, map epoch ${s.map_epoch}`;
    const r = s.redundancy || {};
    const red = $("#redundancy");
    red.className = r.state === "full" ? "good" : "bad";
    red.textContent = r.state === "full"
      ? "Every object at full redundancy."
      : `Degraded: lost disks ${(r.lost_disks || []).join(", ")}, ${r.shards_on_lost_disks ?? 0} shards on them, ${r.damage_reports ?? 0} damage reports awaiting repair.`;
    rows("#members", (m.members || []).map((x) => [x.id, x.addr, x.leader ? "leader" : x.voter ? "voter" : "learner",
      x.matched_index ?? "-", x.lag ?? "-", x.command_level ?? "-"]));
    rows("#nodes", (s.nodes || []).map((n) => [n.id, n.addr, [n.zone, n.rack, n.host].join(" / "), n.state,
      `${n.disks_up}/${(n.disks || []).length}`, n.version || "?"]));
    rows("#disks", (s.disks || []).map((d) => [d.id, d.node, d.state, d.weight, bytes(d.used_bytes),
      bytes(d.capacity_bytes),
      el("progress", { max: d.capacity_bytes || 1, value: d.used_bytes || 0 })]));
  },

  async buckets() {
    const list = (await admin("GET", "buckets")).buckets || [];
    rows("#buckets", list.map((b) => [
      el("a", { class: "bucket", "data-bucket": b.name, onclick: guarded(() => openBucket(b.name, "")) }, b.name),
      b.owner, b.versioning || "-", b.quota_bytes ? bytes(b.quota_bytes) : "none",
      b.ec ? `${b.ec.k}+${b.ec.m}` : "default", when(b.created_ms),
      el("button", { class: "delete-bucket", onclick: guarded(async () => {
        if (!confirm(`Delete the empty bucket ${b.name}?`)) return;
        await admin("DELETE", "buckets/" + enc(b.name));
        await views.buckets();
      }) }, "Delete")]));
  },

  async browser() {
    await listObjects(false);
  },

  async keys() {
    const [keys, policies] = await Promise.all([admin("GET", "keys"), admin("GET", "policies")]);
    rows("#keys", (keys.keys || []).map((k) => [
      k.access_key, k.root ? "root" : k.disabled ? "disabled" : "enabled", (k.policies || []).join(", ") || "-",
      k.description,
      k.root || k.access_key === creds.key ? "" : el("button", { class: "delete-key", onclick: guarded(async () => {
        if (!confirm(`Delete the key ${k.access_key}?`)) return;
        await admin("DELETE", "keys/" + enc(k.access_key));
        await views.keys();
      }) }, "Delete")]));
    rows("#policies", (policies.policies || []).map((p) => [p.name, el("code", {}, p.document)]));
    const select = $("#key-policy");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, "no policy"),
      ...(policies.policies || []).map((p) => el("option", { value: p.name }, p.name)));
    select.value = chosen;
  },

  async workers() {
    const [w, s] = await Promise.all([admin("GET", "workers"), admin("GET", "status")]);
    const d = s.draining || {};
    $("#draining").textContent = (d.disks || []).length
      ? `Draining disks ${d.disks.join(", ")}: ${d.shards_left} shards left to move.` : "No disk is draining.";
    const kinds = {};
    for (const x of w.workers || []) {
      const kind = x.name.split(":")[0];
      (kinds[kind] ||= []).push(x);
    }
    const rates = w.rates || {};
    rows("#work", Object.keys(kinds).sort().map((kind) => {
      const states = {};
      for (const x of kinds[kind]) states[x.state] = (states[x.state] || 0) + 1;
      const limited = ["heal", "rebalance", "scrub"].includes(kind);
      const pausable = limited || kind === "gc" || kind === "lifecycle";
      const paused = rates[kind + "_paused"] === true;
      const rate = rates[kind + "_bytes_per_sec"];
      return [kind, kinds[kind].length, Object.entries(states).map(([k, v]) => `${v} ${k}`).join(", "),
        limited ? (rate ? bytes(rate) + "/s" : "each node's own") : "-",
        pausable ? el("button", { class: "pause", "data-kind": kind, onclick: guarded(async () => {
          await admin("PUT", "worker-rates", { [kind + "_paused"]: !paused });
          await views.workers();
        }) }, paused ? "Start" : "Pause") : ""];
    }));
    rows("#workers", (w.workers || []).map((x) => [x.node, x.name, x.state + (x.last_error ? ` (${x.last_error})` : ""),
      x.progress || "", x.steps ?? 0, x.errors ?? 0]));
  },
};

// ------------------------------------------------------------ object browser

let here = { bucket: "", prefix: "", token: null };

async function openBucket(bucket, prefix) {
  here = { bucket, prefix, token: null };
  show("browser");
  $("#share").hidden = true;
  const crumbs = $("#crumbs");
  const parts = prefix.split("/").filter(Boolean);
  crumbs.replaceChildren(el("a", { onclick: guarded(() => openBucket(bucket, "")) }, bucket),
    ...parts.flatMap((p, i) => [" / ", el("a", {
      onclick: guarded(() => openBucket(bucket, parts.slice(0, i + 1).join("/") + "/")) }, p)]));
  await listObjects(false);
}

// The bucket's usage line (a key without admin rights sees none).
function usage() {
  const bucket = here.bucket;
  admin("GET", "buckets/" + enc(bucket)).then((b) => {
    if (bucket !== here.bucket) return;
    const u = b.usage || {};
    $("#bucket-usage").textContent = `${u.objects ?? "?"} objects, ${bytes(u.bytes)}` +
      (b.quota_bytes ? `, quota ${bytes(b.quota_bytes)}` : "") +
      (u.uploads ? `, ${u.uploads} uploads in progress` : "");
  }).catch(() => { $("#bucket-usage").textContent = ""; });
}

async function listObjects(more) {
  const params = { "list-type": "2", delimiter: "/", prefix: here.prefix };
  if (more && here.token) params["continuation-token"] = here.token;
  const doc = await xml(await s3("GET", here.bucket, undefined, params));
  const text = (n, sel) => n.querySelector(sel)?.textContent ?? "";
  const folders = Array.from(doc.querySelectorAll("CommonPrefixes > Prefix"), (p) => p.textContent);
  const objects = Array.from(doc.querySelectorAll("Contents"), (c) => ({
    key: text(c, "Key"), size: Number(text(c, "Size")), modified: text(c, "LastModified"),
  }));
  if (!more) usage();
  here.token = doc.querySelector("IsTruncated")?.textContent === "true" ? text(doc, "NextContinuationToken") : null;
  $("#more-objects").hidden = !here.token;
  const list = [
    ...folders.map((f) => [el("a", { class: "folder", onclick: guarded(() => openBucket(here.bucket, f)) },
      f.slice(here.prefix.length)), "", "", ""]),
    ...objects.map((o) => {
      const path = "/" + enc(here.bucket) + "/" + enc(o.key, true);
      return [
        el("span", { class: "object", "data-key": o.key }, o.key.slice(here.prefix.length)), bytes(o.size),
        o.modified.replace("T", " ").slice(0, 19),
        el("span", {},
          el("a", { class: "download", href: presign(creds, path, 3600), download: o.key.split("/").pop() }, "Download"),
          " ",
          el("button", { class: "share", onclick: guarded(() => {
            const box = $("#share");
            box.hidden = false;
            box.dataset.path = path;
            $("#share-url").value = presign(creds, path, Number($("#share-ttl").value));
            $("#share-url").select();
          }) }, "Share"),
          " ",
          el("button", { class: "delete", onclick: guarded(async () => {
            if (!confirm(`Delete ${o.key}?`)) return;
            await s3("DELETE", here.bucket, o.key, {});
            await listObjects(false);
          }) }, "Delete")),
      ];
    }),
  ];
  if (more) {
    const body = $("#objects tbody");
    const keep = Array.from(body.children);
    rows("#objects", list);
    body.prepend(...keep);
  } else {
    rows("#objects", list);
  }
}

// ------------------------------------------------------------ wiring

async function enter() {
  $("#who").textContent = creds.key;
  show("status");
  await views.status();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const attempt = { key: $("#access-key").value.trim(), secret: $("#secret-key").value };
    const saved = creds;
    creds = attempt;
    try {
      // Any valid key may list its buckets; admin views say what it may not do.
      await s3("GET", "", undefined, {});
      sessionStorage.setItem("tessera-creds", JSON.stringify(attempt));
      $("#login-error").textContent = "";
      $("#secret-key").value = "";
      await enter().catch(showError);
    } catch (e) {
      creds = saved;
      $("#login-error").textContent = String(e.message || e);
    }
  });
  $("#logout").addEventListener("click", () => {
    sessionStorage.removeItem("tessera-creds");
    creds = null;
    showError(null);
    show("login");
  });
  for (const b of document.querySelectorAll("#nav button[data-view]")) {
    b.addEventListener("click", guarded(async () => {
      show(b.dataset.view);
      await views[b.dataset.view]();
    }));
  }
  $("#back-to-buckets").addEventListener("click", guarded(async () => {
    show("buckets");
    await views.buckets();
  }));
  $("#bucket-form").addEventListener("submit", guarded(async () => {
    await admin("POST", "buckets", { name: $("#new-bucket").value.trim() });
    $("#new-bucket").value = "";
    await views.buckets();
  }));
  $("#upload-form").addEventListener("submit", guarded(async () => {
    const files = Array.from($("#upload-file").files);
    const state = $("#upload-state");
    for (const [i, f] of files.entries()) {
      state.textContent = `uploading ${f.name} (${i + 1} of ${files.length}, ${bytes(f.size)})…`;
      await s3("PUT", here.bucket, here.prefix + f.name, {}, f);
    }
    state.textContent = files.length ? `${files.length} uploaded` : "no file chosen";
    $("#upload-file").value = "";
    await listObjects(false);
  }));
  $("#share-ttl").addEventListener("change", () => {
    const box = $("#share");
    if (box.dataset.path) $("#share-url").value = presign(creds, box.dataset.path, Number($("#share-ttl").value));
  });
  $("#more-objects").addEventListener("click", guarded(() => listObjects(true)));
  $("#key-form").addEventListener("submit", guarded(async () => {
    const policy = $("#key-policy").value;
    const made = await admin("POST", "keys", {
      description: $("#key-description").value, policies: policy ? [policy] : [] });
    $("#new-access-key").textContent = made.access_key;
    $("#new-secret").textContent = made.secret_key;
    $("#new-key").hidden = false;
    $("#key-description").value = "";
    await views.keys();
  }));
  if (creds) enter().catch(showError);
  else show("login");
});
