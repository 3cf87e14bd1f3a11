// Shared helpers of Herald's pages. Everything on screen is built with DOM calls and
// textContent, never from HTML strings, so data from the API cannot become markup.
"use strict";

const Herald = (() => {
  /** h("a", {href: "#"}, "text", child…): an element. `on*` attributes add listeners. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** The API, with the token this tab signed in with, or (`csrfKey`) with a person's
   *  session cookie and its CSRF token, in the environment kept under `envKey` (a token
   *  names its own). Errors carry code and detail. */
  function client(tokenKey, csrfKey, envKey) {
    return async function api(method, path, body) {
      const token = sessionStorage.getItem(tokenKey);
      const csrf = csrfKey && sessionStorage.getItem(csrfKey);
      const env = envKey && sessionStorage.getItem(envKey);
      const auth = token ? { Authorization: "Bearer " + token } : csrf ? { "X-CSRF-Token": csrf } : {};
      if (!token && env) auth["Herald-Environment"] = env;
      const resp = await fetch("/api/v1" + path, {
        method,
        credentials: "same-origin",
        headers: Object.assign(
          auth,
          body === undefined ? {} : { "Content-Type": "application/json" }
        ),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await resp.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
      if (!resp.ok) {
        let detail = data && data.detail;
        if (Array.isArray(detail)) detail = detail.map((d) => (d.loc || []).join(".") + ": " + d.msg).join("; ");
        const err = new Error(detail || resp.statusText);
        err.status = resp.status;
        err.code = data && data.code;
        throw err;
      }
      return data;
    };
  }

  function fmtTime(iso) {
    if (!iso) return "-";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  /** Delivery status numbers as the API gives them. */
  const STATUS = { 0: ["succeeded", "ok"], 1: ["pending", "warn"], 2: ["failed", "bad"], 3: ["sending", "muted"], 4: ["canceled", "muted"] };
  function statusBadge(n) {
    const [text, cls] = STATUS[n] || [String(n), "muted"];
    return h("span", { class: "badge " + cls }, text);
  }
  /** An attempt's HTTP status; when no response came, why not (`reason`, the attempt's
   *  response text: connection reset, TLS failure, timeout…). */
  function httpBadge(code, reason) {
    if (!code) {
      const badge = h("span", { class: "badge bad" }, "no response");
      if (!reason) return badge;
      const short = reason.length > 80 ? reason.slice(0, 79) + "…" : reason;
      return h("span", {}, badge, " ", h("span", { class: "reason", title: reason }, short));
    }
    return h("span", { class: "badge " + (code >= 200 && code < 300 ? "ok" : "bad") }, String(code));
  }

  /** A table: columns are [header, row => cell, {narrow: false}]; rows click to `open`. */
  function table(caption, columns, rows, open) {
    const head = h("tr", {}, columns.map(([title, , opts]) => h("th", { scope: "col", class: opts && opts.wide ? "hide-narrow" : null }, title)));
    const body = rows.map((row) => {
      const tr = h("tr", { class: open ? "clickable" : null }, columns.map(([, cell, opts]) => h("td", { class: [opts && opts.mono ? "mono" : "", opts && opts.wide ? "hide-narrow" : ""].join(" ").trim() || null }, cell(row))));
      if (open) {
        tr.addEventListener("click", (e) => { if (!e.target.closest("a,button")) open(row); });
      }
      return tr;
    });
    if (!rows.length) body.push(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "Nothing here yet.")));
    return h("table", {}, h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, body));
  }

  /** A link that works with the keyboard like any link. */
  function link(href, text) {
    return h("a", { href }, text);
  }

  /** An announcement for screen readers and eyes, in the page's status line. */
  function say(text, isError) {
    const line = document.getElementById("status");
    if (!line) return;
    line.textContent = text;
    line.className = "status-line " + (isError ? "error" : "muted");
  }

  /** Re-runs `refresh` every `ms` while the tab is visible, until the view changes. */
  let timer = null;
  function poll(refresh, ms) {
    stopPolling();
    timer = setInterval(() => { if (document.visibilityState === "visible") refresh().catch(() => {}); }, ms);
  }
  function stopPolling() { if (timer) clearInterval(timer); timer = null; }

  /** Hash routing: patterns like "#/app/:id". */
  function router(routes, fallback) {
    async function run() {
      stopPolling();
      say("");
      const hash = location.hash || "#/";
      for (const [pattern, view] of routes) {
        const names = [];
        const re = new RegExp("^" + pattern.replace(/:([a-z]+)/g, (_, n) => { names.push(n); return "([^/]+)"; }) + "$");
        const m = hash.split("?")[0].match(re);
        if (m) {
          const params = Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1])]));
          params.query = new URLSearchParams(hash.split("?")[1] || "");
          try { await view(params); } catch (e) { say(e.message, true); }
          return;
        }
      }
      fallback();
    }
    window.addEventListener("hashchange", run);
    return run;
  }

  /**
   * Deliveries by outcome (bars) and latency (line) over time, from attempts
   * ({timestamp, status, responseDurationMs}), as an SVG in `buckets` slices.
   */
  function chart(title, attempts, buckets) {
    buckets = buckets || 24;
    const times = attempts.map((a) => new Date(a.timestamp).getTime());
    const now = Date.now();
    const start = times.length ? Math.min(...times) : now - 3600e3;
    const span = Math.max(now - start, 60e3);
    const slots = Array.from({ length: buckets }, () => ({ ok: 0, bad: 0, ms: [] }));
    attempts.forEach((a, i) => {
      const k = Math.min(buckets - 1, Math.floor(((times[i] - start) / span) * buckets));
      slots[k][a.status === 0 ? "ok" : "bad"] += 1;
      slots[k].ms.push(a.responseDurationMs);
    });
    const max = Math.max(1, ...slots.map((s) => s.ok + s.bad));
    const p50 = (ms) => { if (!ms.length) return null; const s = [...ms].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
    const lat = slots.map((s) => p50(s.ms));
    const maxLat = Math.max(1, ...lat.filter((v) => v !== null));
    const W = 600, H = 160, bw = W / buckets;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H + 20}`);
    svg.setAttribute("role", "img");
    const total = attempts.length, failed = attempts.filter((a) => a.status !== 0).length;
    svg.setAttribute("aria-label", `${title}: ${total} attempts, ${failed} failed, over the last ${Math.round(span / 60000)} minutes`);
    const rect = (x, y, w, hh, color) => {
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", x); r.setAttribute("y", y); r.setAttribute("width", w); r.setAttribute("height", hh);
      r.setAttribute("fill", color);
      svg.append(r);
    };
    const css = getComputedStyle(document.documentElement);
    slots.forEach((s, i) => {
      const okH = (s.ok / max) * H, badH = (s.bad / max) * H;
      rect(i * bw + 2, H - okH, bw - 4, okH, css.getPropertyValue("--ok"));
      rect(i * bw + 2, H - okH - badH, bw - 4, badH, css.getPropertyValue("--bad"));
    });
    const pts = lat.map((v, i) => (v === null ? null : `${i * bw + bw / 2},${H - (v / maxLat) * H}`)).filter(Boolean);
    if (pts.length > 1) {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", pts.join(" "));
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", css.getPropertyValue("--brand"));
      line.setAttribute("stroke-width", "2");
      svg.append(line);
    }
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 0); label.setAttribute("y", H + 16); label.setAttribute("font-size", "12");
    label.setAttribute("fill", css.getPropertyValue("--muted"));
    label.textContent = `${new Date(start).toLocaleTimeString()} — now · latency p50 up to ${maxLat} ms`;
    svg.append(label);
    return h("div", { class: "panel chart" },
      h("h2", {}, title),
      svg,
      h("div", { class: "legend" },
        h("span", {}, h("span", { class: "swatch ok" }), "succeeded"),
        h("span", {}, h("span", { class: "swatch bad" }), "failed"),
        h("span", {}, h("span", { class: "swatch lat" }), "median latency")));
  }

  /** Puts `nodes` (arrays allowed) in the page's <main>, replacing what was there. */
  function show(...nodes) {
    document.getElementById("main").replaceChildren(...nodes.flat(Infinity).filter(Boolean));
  }

  /** Marks the navigation link `nav` as the current page. */
  function current(nav) {
    document.querySelectorAll("[data-nav]").forEach((a) => {
      if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
  }

  /** A section that re-renders itself from `load` now and on every live refresh. */
  function live(load) {
    const box = h("div", {});
    return { box, refresh: async () => box.replaceChildren(...[await load()].flat()) };
  }

  /** Pretty JSON text of a value or of a JSON string. */
  function pretty(v) {
    if (typeof v === "string") { try { return JSON.stringify(JSON.parse(v), null, 2); } catch (_) { return v; } }
    return JSON.stringify(v, null, 2);
  }

  /**
   * Checks `value` against a JSON Schema (the common keywords: type, properties,
   * required, additionalProperties, items, enum, const, minimum, maximum, minLength,
   * maxLength, pattern, minItems, maxItems). Returns a list of "path: problem".
   */
  function validate(schema, value, path) {
    path = path || "$";
    const errors = [];
    if (!schema || typeof schema !== "object") return errors;
    const typeOf = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v);
    if (schema.type) {
      const types = Array.isArray(schema.type) ? schema.type : [schema.type];
      const t = typeOf(value);
      const ok = types.some((want) => want === t || (want === "number" && t === "integer"));
      if (!ok) return [`${path}: should be ${types.join(" or ")}, is ${t}`];
    }
    if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) errors.push(`${path}: should be one of ${JSON.stringify(schema.enum)}`);
    if ("const" in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) errors.push(`${path}: should be ${JSON.stringify(schema.const)}`);
    if (typeof value === "number") {
      if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: should be at least ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: should be at most ${schema.maximum}`);
    }
    if (typeof value === "string") {
      if (schema.minLength !== undefined && value.length < schema.minLength) errors.push(`${path}: should have at least ${schema.minLength} characters`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) errors.push(`${path}: should have at most ${schema.maxLength} characters`);
      if (schema.pattern && !new RegExp(schema.pattern, "u").test(value)) errors.push(`${path}: should match ${schema.pattern}`);
    }
    if (Array.isArray(value)) {
      if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${path}: should have at least ${schema.minItems} items`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push(`${path}: should have at most ${schema.maxItems} items`);
      if (schema.items) value.forEach((v, i) => errors.push(...validate(schema.items, v, `${path}[${i}]`)));
    }
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const name of schema.required || []) if (!(name in value)) errors.push(`${path}: ${name} is required`);
      const props = schema.properties || {};
      for (const [k, v] of Object.entries(value)) {
        if (props[k]) errors.push(...validate(props[k], v, `${path}.${k}`));
        else if (schema.additionalProperties === false) errors.push(`${path}: ${k} is not allowed`);
        else if (typeof schema.additionalProperties === "object") errors.push(...validate(schema.additionalProperties, v, `${path}.${k}`));
      }
    }
    return errors;
  }

  /** An example value for a schema: its `examples`/`example`/`default`, else made up. */
  function example(schema) {
    if (!schema || typeof schema !== "object") return {};
    if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
    if ("example" in schema) return schema.example;
    if ("default" in schema) return schema.default;
    if ("const" in schema) return schema.const;
    if (schema.enum) return schema.enum[0];
    const t = Array.isArray(schema.type) ? schema.type[0] : schema.type || (schema.properties ? "object" : undefined);
    switch (t) {
      case "object": return Object.fromEntries(Object.entries(schema.properties || {}).map(([k, v]) => [k, example(v)]));
      case "array": return schema.items ? [example(schema.items)] : [];
      case "integer": return schema.minimum !== undefined ? schema.minimum : 1;
      case "number": return schema.minimum !== undefined ? schema.minimum : 1.5;
      case "boolean": return true;
      case "string":
        if (schema.format === "date-time") return new Date(0).toISOString();
        if (schema.format === "email") return "someone@example.com";
        if (schema.format === "uri") return "https://example.com/";
        return "string";
      default: return null;
    }
  }

  /** The fields of a schema as a nested list: name, type, required, description. */
  function fields(schema) {
    const props = (schema && schema.properties) || {};
    const required = new Set((schema && schema.required) || []);
    return h("ul", { class: "fields" }, Object.entries(props).map(([name, s]) => {
      const type = Array.isArray(s.type) ? s.type.join(" | ") : s.type || (s.properties ? "object" : "any");
      const kids = s.properties ? fields(s) : s.items && s.items.properties ? fields(s.items) : null;
      return h("li", {},
        h("code", {}, name), " ",
        h("span", { class: "muted" }, type + (s.items && s.items.type ? ` of ${s.items.type}` : "")),
        required.has(name) ? h("span", { class: "badge warn" }, "required") : null,
        s.enum ? h("span", { class: "muted" }, " one of " + s.enum.map((e) => JSON.stringify(e)).join(", ")) : null,
        s.description ? h("div", {}, s.description) : null,
        kids);
    }));
  }

  /** A destination's state: enabled, disabled, paused (stopped by Herald) or retrying. */
  const DEST_STATUS = { enabled: "ok", disabled: "muted", paused: "bad", retrying: "warn" };
  function destinationBadge(d) {
    return h("span", { class: "badge " + (DEST_STATUS[d.status] || "muted") }, d.status);
  }
  function lagText(stats) {
    if (!stats) return "-";
    if (!stats.lagMessages) return "caught up";
    return `${stats.lagMessages} messages · ${Math.round(stats.lagSeconds)} s`;
  }

  /** What every AWS destination type also asks for. */
  const AWS_FIELDS = [
    ["region", "Region", "text", "us-east-1"],
    ["accessKeyId", "Access key ID", "text", "AKIA…"],
    ["secretAccessKey", "Secret access key", "password", ""],
    ["endpointUrl", "Endpoint URL (a compatible service; empty: AWS)", "url", ""],
  ];

  /** The settings of each destination type the form can make: [config field, label,
   *  input type, placeholder or default]. The API checks them again (broker_config.rs). */
  const DESTINATION_TYPES = {
    fifoEndpoint: ["ordered batches POSTed to you", [["url", "Where batches go (fifoEndpoint)", "url", "https://example.com/batches"]]],
    pollingEndpoint: ["the consumer polls", []],
    postgres: ["rows in your PostgreSQL table", [
      ["url", "PostgreSQL URL", "text", "postgres://user@db.example.com:5432/app"],
      ["password", "Password", "password", ""],
      ["tableName", "Table", "text", "public.webhook_events"]]],
    rabbitMq: ["messages in your RabbitMQ", [
      ["uri", "AMQP URI", "text", "amqp://user:pass@mq.example.com:5672/%2F"],
      ["routingKey", "Routing key", "text", "webhooks"],
      ["exchange", "Exchange (empty: the default)", "text", ""],
      ["mandatory", "Fail when no queue takes a message (mandatory)", "checkbox", true]]],
    nats: ["JetStream messages (Herald extension)", [
      ["url", "NATS URL", "text", "nats://nats.example.com:4222"],
      ["subject", "Subject", "text", "webhooks.events"],
      ["token", "Token", "password", ""]]],
    redisStream: ["a Redis stream (Herald extension)", [
      ["url", "Redis URL", "text", "redis://redis.example.com:6379/0"],
      ["stream", "Stream key", "text", "webhooks"],
      ["maxLen", "Keep at most (entries)", "number", "1000000"]]],
    otelTracing: ["spans to your OpenTelemetry collector", [["url", "Collector URL (OTLP/HTTP traces)", "url", "https://collector.example.com:4318/v1/traces"]]],
    sqs: ["messages in your SQS queue", [["queueUrl", "Queue URL", "url", "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks"], ...AWS_FIELDS]],
    sns: ["publishes to your SNS topic", [["topicArn", "Topic ARN", "text", "arn:aws:sns:us-east-1:123456789012:webhooks"], ...AWS_FIELDS]],
    amazonS3: ["JSON Lines objects in your S3 bucket", [["bucket", "Bucket", "text", "webhook-archive"], ...AWS_FIELDS]],
  };

  /** Where a destination sends, for lists and pages (passwords come masked). */
  function destinationWhere(d, appId) {
    if (d.type === "pollingEndpoint") return `GET /api/v1/app/${appId}/poller/${d.id}`;
    const c = d.config;
    return c.url || c.uri || c.queueUrl || c.topicArn || (c.bucket && "s3://" + c.bucket) || "-";
  }

  /** An application's destinations (console and portal): each with its state and lag,
   *  and a folded form to create one. `href(d)` is where a destination's page is. */
  function destinationsPanel(api, appId, href) {
    const base = "/app/" + encodeURIComponent(appId);
    const list = live(async () => {
      const page = await api("GET", `${base}/destination?limit=100`);
      const stats = new Map(await Promise.all(page.data.map(async (d) =>
        [d.id, await api("GET", `${base}/destination/${encodeURIComponent(d.id)}/stats`).catch(() => null)])));
      return h("div", { class: "panel" }, table("Destinations", [
        ["Type", (d) => link(href(d), d.uid ? `${d.type} (${d.uid})` : d.type)],
        ["Where", (d) => (d.type === "pollingEndpoint" ? "read by the consumer" : destinationWhere(d, appId)), { mono: true }],
        ["State", (d) => destinationBadge(d)],
        ["Lag", (d) => lagText(stats.get(d.id))],
        ["Event types", (d) => (d.eventTypes || ["all"]).join(", "), { wide: true }],
      ], page.data, (d) => (location.hash = href(d))));
    });
    const kind = h("select", { id: "dest-type", name: "type" },
      Object.entries(DESTINATION_TYPES).map(([name, [about]]) => h("option", { value: name }, `${name}: ${about}`)));
    // The chosen type's settings, made again when the type changes.
    const settings = h("div", { class: "inline" });
    let inputs = [];
    const showSettings = () => {
      inputs = DESTINATION_TYPES[kind.value][1].map(([name, label, type, hint]) => {
        const id = "dest-cfg-" + name;
        const input = type === "checkbox"
          ? h("input", { id, type, checked: hint === true })
          : h("input", { id, type, placeholder: type === "number" ? "" : hint, value: type === "number" ? hint : "" });
        return [name, type, input, h("label", { for: id }, label, input)];
      });
      settings.replaceChildren(...inputs.map((i) => i[3]));
    };
    kind.addEventListener("change", showSettings);
    showSettings();
    const config = () => {
      const out = {};
      for (const [name, type, input] of inputs) {
        if (type === "checkbox") out[name] = input.checked;
        else if (type === "number") { if (input.value !== "") out[name] = Number(input.value); }
        else if (input.value.trim() !== "") out[name] = input.value.trim();
      }
      return out;
    };
    const batch = h("input", { id: "dest-batch", type: "number", min: "1", max: "1000", value: "100" });
    const wait = h("input", { id: "dest-wait", type: "number", min: "0", max: "3600", value: "0" });
    const types = h("input", { id: "dest-types", placeholder: "all" });
    const input = () => {
      const eventTypes = types.value.split(",").map((t) => t.trim()).filter(Boolean);
      return {
        type: kind.value,
        batchSize: Number(batch.value),
        maxWaitSecs: Number(wait.value),
        eventTypes: eventTypes.length ? eventTypes : null,
        config: config(),
      };
    };
    const tested = h("p", { id: "dest-test-result", role: "status" });
    const test = h("button", { type: "button", class: "secondary", onclick: async () => {
      tested.textContent = "Connecting…";
      try {
        const r = await api("POST", `${base}/destination/test-connection`, input());
        tested.textContent = r.ok ? "Connection works" : "Connection failed: " + r.reason;
      } catch (err) { tested.textContent = "Not valid: " + err.message; }
    } }, "Test connection");
    const form = h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const d = await api("POST", `${base}/destination`, input());
        say("Destination created");
        location.hash = href(d);
      } catch (err) { say(err.message, true); }
    } },
      h("label", { for: "dest-type" }, "Destination type", kind),
      settings,
      h("label", { for: "dest-batch" }, "Batch size", batch),
      h("label", { for: "dest-wait" }, "Wait to fill a batch (s)", wait),
      h("label", { for: "dest-types" }, "Only these event types (comma-separated; empty: all)", types),
      test,
      h("button", { type: "submit" }, "Create destination"),
      tested);
    const create = h("details", { class: "panel" }, h("summary", {}, "New destination"), form);
    return { box: h("div", {}, list.box, create), refresh: list.refresh };
  }

  /** One destination's page: settings, state, lag, and what an operator or consumer
   *  does with it (enable, disable, seek to a time, see the secret or token). */
  function destinationPage(api, appId, destId) {
    const path = `/app/${encodeURIComponent(appId)}/destination/${encodeURIComponent(destId)}`;
    const secret = h("code", { id: "dest-secret", class: "mono" }, "••••••••••••");
    const body = live(async () => {
      const [d, stats] = await Promise.all([api("GET", path), api("GET", path + "/stats").catch(() => null)]);
      const stat = (label, value) => h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, String(value)));
      return [
        h("h1", {}, d.type, " ", h("span", { class: "muted mono" }, d.id)),
        h("div", { class: "grid", "aria-label": "Lag" },
          stat("State", d.status),
          stat("Behind (messages)", stats ? stats.lagMessages : "-"),
          stat("Behind (seconds)", stats ? Math.round(stats.lagSeconds) : "-")),
        h("dl", { class: "kv panel" },
          h("dt", {}, "State"), h("dd", {}, destinationBadge(d)),
          h("dt", {}, "Why it stopped or retries"), h("dd", {}, d.failureReason || "-"),
          h("dt", {}, "Next try"), h("dd", {}, fmtTime(d.nextRetryAt)),
          h("dt", {}, "Where"), h("dd", { class: "mono" }, destinationWhere(d, appId)),
          h("dt", {}, "Batch size"), h("dd", {}, String(d.batchSize)),
          h("dt", {}, "Wait to fill a batch"), h("dd", {}, d.maxWaitSecs + " s"),
          h("dt", {}, "Event types"), h("dd", {}, (d.eventTypes || ["all"]).join(", ")),
          h("dt", {}, "Channels"), h("dd", {}, (d.channels || ["all"]).join(", ")),
          h("dt", {}, "Position"), h("dd", { class: "mono" }, d.currentIterator)),
      ];
    });
    const act = (label, cls, run) => h("button", { type: "button", class: cls, onclick: async () => {
      try { say(await run()); await body.refresh(); } catch (err) { say(err.message, true); }
    } }, label);
    const type = async () => (await api("GET", path)).type;
    const when = h("input", { id: "seek-at", type: "datetime-local" });
    const seek = h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try {
        if (!when.value) throw new Error("Choose a time to seek to.");
        await api("POST", path + "/seek", { after: new Date(when.value).toISOString() });
        say("Moved: the next message sent is the first at or after that time");
        await body.refresh();
      } catch (err) { say(err.message, true); }
    } }, h("label", { for: "seek-at" }, "Send again from", when), h("button", { type: "submit", class: "secondary" }, "Seek"));
    const toolbar = h("div", { class: "toolbar" },
      act("Enable", "secondary", async () => { await api("PATCH", path, { type: await type(), status: "enabled" }); return "Enabled"; }),
      act("Disable", "danger", async () => { await api("PATCH", path, { type: await type(), status: "disabled" }); return "Disabled"; }),
      act("Show secret", "secondary", async () => {
        secret.textContent = (await api("GET", path + "/secret")).key;
        return "The signing secret (fifoEndpoint) or the poller's token (pollingEndpoint)";
      }),
      seek);
    return { box: h("div", {}, toolbar, body.box, h("p", {}, "Secret: ", secret)), refresh: body.refresh };
  }

  const TRANSFORM_TEMPLATE = [
    "function handler(webhook) {",
    "  // webhook.method, webhook.url, webhook.eventType, webhook.payload",
    "  // Change them, set webhook.headers, or webhook.cancel = true to skip.",
    "  return webhook;",
    "}",
    "",
  ].join("\n");

  /** An endpoint's transformation (console and portal): an editor, a Run button that
   *  tries the code on an event type's example or a given payload without saving it,
   *  and Save. `types` are the event types to choose an example from. */
  async function transformationPanel(api, appId, epId, types) {
    const path = `/app/${encodeURIComponent(appId)}/endpoint/${encodeURIComponent(epId)}/transformation`;
    const saved = await api("GET", path);
    const code = h("textarea", { id: "transform-code", spellcheck: "false", rows: "12", "aria-label": "Transformation code" });
    code.value = saved.code || TRANSFORM_TEMPLATE;
    const enabled = h("input", { id: "transform-enabled", type: "checkbox", checked: saved.enabled });
    const type = h("select", { id: "transform-type" },
      h("option", { value: "" }, "(my payload below)"),
      types.map((t) => h("option", { value: t.name }, t.name)));
    const payload = h("textarea", { id: "transform-payload", rows: "4", spellcheck: "false", placeholder: '{"example": true}', "aria-label": "Payload to try" });
    const result = h("pre", { id: "transform-result", "aria-live": "polite" }, "Run the code to see what would be sent.");
    const describe = (out) => {
      if (out.outcome === "cancel") return "Cancelled: this delivery would not be sent.";
      if (out.outcome === "error") {
        const e = out.error;
        const at = e.line ? ` (line ${e.line}, column ${e.column})` : "";
        return `Error ${e.code}${at}: ${e.message}`;
      }
      const headers = Object.entries(out.headers || {}).map(([k, v]) => `${k}: ${v}`).join("\n");
      return `${out.method} ${out.url}\n${headers ? headers + "\n" : ""}\n${pretty(out.payload)}`;
    };
    const run = async () => {
      let body = { code: code.value };
      if (type.value) body.eventType = type.value;
      if (payload.value.trim()) {
        try { body.payload = JSON.parse(payload.value); } catch (err) { throw new Error("The payload is not JSON: " + err.message); }
      }
      const out = await api("POST", path + "/try", body);
      result.textContent = describe(out);
      result.className = out.outcome === "error" ? "error" : "";
      return out.outcome === "error" ? "The code failed: see the result" : "Ran";
    };
    const act = (label, cls, fn) => h("button", { type: "button", class: cls, onclick: async () => {
      try { say(await fn()); } catch (err) { say(err.message, true); }
    } }, label);
    return h("section", { class: "panel", "aria-labelledby": "transform-title" },
      h("h2", { id: "transform-title" }, "Transformation"),
      h("p", { class: "muted" }, "JavaScript run on each delivery before it is signed: reshape the body, change the URL or method, add headers, or cancel. Limits: CPU time and memory per run; no network, files or clock."),
      code,
      h("div", { class: "toolbar" },
        h("label", { for: "transform-type" }, "Try with", type),
        act("Run", "", run),
        h("label", { for: "transform-enabled" }, enabled, " Enabled"),
        act("Save transformation", "secondary", async () => {
          await api("PATCH", path, { code: code.value, enabled: enabled.checked });
          return enabled.checked ? "Transformation saved and on" : "Transformation saved (off)";
        })),
      payload,
      result);
  }

  return { h, client, fmtTime, statusBadge, httpBadge, table, link, say, poll, stopPolling, router, chart, pretty, validate, example, fields, show, current, live, destinationsPanel, destinationPage, transformationPanel };
})();
