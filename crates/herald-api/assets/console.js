// The operator console: applications, endpoints, destinations, messages and attempts,
// event types with their schemas, sources, health. Signed in with an admin token kept in this tab only.
"use strict";

(() => {
  const { h, fmtTime, statusBadge, httpBadge, table, link, say, poll, router, chart, pretty, show, current, live } = Herald;
  /** The uid of Herald's operational webhooks application (herald-store operational.rs). */
  const OPERATIONAL_UID = "herald-operational";
  const TOKEN = "herald.console.token";
  /** Set when a person signed in with their email (the session cookie does the rest). */
  const CSRF = "herald.console.csrf";
  /** The environment someone signed in chose (a token is in its own). */
  const ENVIRONMENT = "herald.console.environment";
  const request = Herald.client(TOKEN, CSRF, ENVIRONMENT);
  /** The API; a 401 (the token was revoked or expired) goes back to the sign-in form. */
  async function api(method, path, body) {
    try {
      return await request(method, path, body);
    } catch (err) {
      if (err.status === 401 && document.getElementById("token") === null) {
        sessionStorage.removeItem(TOKEN);
        sessionStorage.removeItem(CSRF);
        Herald.stopPolling();
        signIn();
      }
      throw err;
    }
  }
  const enc = encodeURIComponent;
  const LIVE_MS = 3000;
  /** The inbound schemes (herald-core inbound.rs, SCHEMES). */
  const SCHEMES = ["github", "stripe", "shopify", "slack", "square", "twilio", "paddle", "zoom",
    "linear", "gitlab", "discord", "standard-webhooks", "hmac-sha256", "hmac", "none"];

  /** A folded "create" form: `fields` are [name, label, {type, required, options}];
   *  `submit` gets the values and returns where to go next. The API's refusal (422 with
   *  the field and the reason) is shown as it is. */
  function createForm(title, button, fields, submit) {
    const inputs = fields.map(([name, label, opts = {}]) => {
      const id = "new-" + name;
      const control = opts.options
        ? h("select", { id, name }, opts.options.map((o) => h("option", { value: o }, o)))
        : h("input", { id, name, type: opts.type || "text", required: !!opts.required, placeholder: opts.placeholder || "" });
      return h("label", { for: id }, label, control);
    });
    const form = h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      const data = Object.fromEntries(new FormData(form).entries());
      try {
        location.hash = await submit(data);
        say(title + ": done");
      } catch (err) {
        say(err.message, true);
      }
    } }, inputs, h("button", { type: "submit" }, button));
    return h("details", { class: "panel" }, h("summary", {}, title), form);
  }

  /** A message's deliveries summed up: the worst status among its endpoints. */
  const WORST_FIRST = [2, 1, 3, 4, 0];
  function worstStatus(statuses) {
    return WORST_FIRST.find((s) => statuses.includes(s));
  }

  function signIn() {
    current("");
    document.getElementById("signout").hidden = true;
    // As oneself: email, password and, for someone with a second factor, a TOTP code.
    const email = h("input", { id: "email", type: "email", autocomplete: "username", required: true });
    const password = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
    const code = h("input", { id: "code", inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}", placeholder: "only if you have one" });
    const personError = h("p", { class: "error", role: "alert" });
    const person = h("form", { class: "panel signin", onsubmit: async (e) => {
      e.preventDefault();
      const body = { email: email.value.trim(), password: password.value };
      if (code.value.trim()) body.code = code.value.trim();
      try {
        const resp = await fetch("/api/v1/session", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
        const data = await resp.json();
        if (!resp.ok) throw new Error(typeof data.detail === "string" ? data.detail : resp.statusText);
        sessionStorage.removeItem(TOKEN);
        sessionStorage.setItem(CSRF, data.csrfToken);
        start();
      } catch (err) {
        personError.textContent = err.message;
      }
    } },
      h("h1", {}, "Sign in to Herald"),
      h("label", { for: "email" }, "Email", email),
      h("label", { for: "password" }, "Password", password),
      h("label", { for: "code" }, "Code from your authenticator app", code),
      h("button", { type: "submit" }, "Sign in"),
      personError);
    // Or with an admin token (the first start prints one).
    const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true });
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "panel signin", onsubmit: async (e) => {
      e.preventDefault();
      sessionStorage.removeItem(CSRF);
      sessionStorage.setItem(TOKEN, input.value.trim());
      try {
        await api("GET", "/app?limit=1");
        start();
      } catch (err) {
        sessionStorage.removeItem(TOKEN);
        error.textContent = err.status === 401 ? "That token is not valid." : err.message;
      }
    } },
      h("h2", {}, "Or with a token"),
      h("label", { for: "token" }, "Admin token", input),
      h("p", { class: "muted" }, "The token stays in this browser tab and is sent only to this server's API."),
      h("button", { type: "submit" }, "Use token"),
      error);
    show(person, form);
    email.focus();
    // Single sign-on, when the server has a provider.
    fetch("/api/v1/sso").then((r) => r.json()).then((sso) => {
      if (!sso.enabled || !document.body.contains(person)) return;
      person.after(h("div", { class: "panel signin" },
        h("a", { class: "button", href: "/api/v1/sso/start", id: "sso" }, "Sign in with single sign-on"),
        h("p", { class: "muted" }, "With " + sso.issuer + ".")));
    }).catch(() => {});
  }

  /** A person's session that came from single sign-on (the cookie is set; the CSRF
   *  token is asked for). */
  async function resumeSession() {
    try {
      const resp = await fetch("/api/v1/session", { credentials: "same-origin" });
      if (!resp.ok) return false;
      sessionStorage.setItem(CSRF, (await resp.json()).csrfToken);
      return true;
    } catch (_) {
      return false;
    }
  }

  async function healthStats() {
    const health = await fetch("/api/v1/health").then((r) => r.json());
    const stat = (label, value) => h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, String(value)));
    return h("div", { class: "grid", "aria-label": "Health" },
      stat("Store", health.database.status),
      stat("Queue: pending", health.queue.pending ?? "-"),
      stat("Oldest due (s)", Math.round(health.queue.oldestDueAgeSeconds ?? 0)),
      stat("Engine", health.engine.status + " · " + health.engine.inMemory + " in memory"));
  }

  async function apps() {
    current("apps");
    const stats = live(healthStats);
    const list = live(async () => {
      const page = await api("GET", "/app?limit=100");
      return h("div", { class: "panel" }, table("Applications", [
        ["Name", (a) => link("#/app/" + enc(a.id), a.name)],
        ["UID", (a) => a.uid || "-", { mono: true }],
        ["ID", (a) => a.id, { mono: true, wide: true }],
        ["Created", (a) => fmtTime(a.createdAt), { wide: true }],
      ], page.data, (a) => (location.hash = "#/app/" + enc(a.id))));
    });
    // Herald's own application is not a tenant: it is not in the list, but here.
    const operational = await api("GET", "/app/" + OPERATIONAL_UID).catch(() => null);
    const opPanel = operational && h("div", { class: "panel", "aria-label": "Operational webhooks" },
      h("h2", {}, "Operational webhooks"),
      h("p", { class: "muted" }, "Herald's own events (endpoint created, updated, deleted or disabled; deliveries failing, exhausted or recovered). Subscribe an endpoint to hear of them: ",
        link("#/app/" + enc(operational.id), operational.name), "."));
    const create = createForm("New application", "Create application", [
      ["name", "Name", { required: true }],
      ["uid", "UID (optional)", { placeholder: "acme" }],
    ], async (d) => {
      const a = await api("POST", "/app", { name: d.name, uid: d.uid || null });
      return "#/app/" + enc(a.id);
    });
    show(h("h1", {}, "Applications"), stats.box, create, h("div", { style: null }, list.box), opPanel || "");
    await Promise.all([stats.refresh(), list.refresh()]);
    poll(() => Promise.all([stats.refresh(), list.refresh()]), LIVE_MS);
  }

  /** Recent attempts of some endpoints, for the charts. */
  async function recentAttempts(appId, endpoints) {
    const lists = await Promise.all(endpoints.slice(0, 10).map((ep) =>
      api("GET", `/app/${enc(appId)}/attempt/endpoint/${enc(ep.id)}?limit=250`).then((p) => p.data).catch(() => [])));
    return lists.flat();
  }

  async function app({ app: appId, query }) {
    current("apps");
    const a = await api("GET", "/app/" + enc(appId));
    const field = (name, label, type, value) => h("label", { for: "q-" + name }, label, h("input", { id: "q-" + name, name, type: type || "text", value: value || "" }));
    const form = h("form", { class: "inline", role: "search", onsubmit: (e) => {
      e.preventDefault();
      const data = new FormData(form);
      const id = String(data.get("msg") || "").trim();
      if (id) { location.hash = `#/app/${enc(a.id)}/msg/${enc(id)}`; return; }
      const q = new URLSearchParams();
      for (const k of ["eventType", "channel", "after", "before", "status"]) if (data.get(k)) q.set(k, data.get(k));
      location.hash = `#/app/${enc(a.id)}?${q}`;
    } },
      field("msg", "Message ID", "search", ""),
      field("eventType", "Event type", "text", query.get("eventType")),
      field("channel", "Channel", "text", query.get("channel")),
      field("after", "After", "datetime-local", query.get("after")),
      field("before", "Before", "datetime-local", query.get("before")),
      h("label", { for: "q-status" }, "Delivery status",
        h("select", { id: "q-status", name: "status" },
          [["", "any"], ["0", "succeeded"], ["1", "pending"], ["2", "failed"], ["4", "canceled"]].map(([v, t]) =>
            h("option", { value: v, selected: query.get("status") === v }, t)))),
      h("button", { type: "submit" }, "Search"));
    const endpoints = live(async () => {
      const page = await api("GET", `/app/${enc(a.id)}/endpoint?limit=100`);
      const attempts = await recentAttempts(a.id, page.data);
      return [
        chart("Deliveries of " + a.name, attempts),
        h("div", { class: "panel" }, table("Endpoints", [
          ["URL", (e) => link(`#/app/${enc(a.id)}/ep/${enc(e.id)}`, e.url)],
          ["State", (e) => h("span", { class: "badge " + (e.disabled ? "bad" : "ok") }, e.disabled ? "disabled" : "enabled")],
          ["Event types", (e) => (e.filterTypes || ["all"]).join(", "), { wide: true }],
          ["ID", (e) => e.id, { mono: true, wide: true }],
        ], page.data, (e) => (location.hash = `#/app/${enc(a.id)}/ep/${enc(e.id)}`))),
      ];
    });
    const destinations = Herald.destinationsPanel(api, a.id, (d) => `#/app/${enc(a.id)}/dest/${enc(d.id)}`);
    const messages = live(async () => {
      const q = new URLSearchParams({ limit: "50", with_content: "false" });
      if (query.get("eventType")) q.set("event_types", query.get("eventType"));
      if (query.get("channel")) q.set("channel", query.get("channel"));
      if (query.get("after")) q.set("after", new Date(query.get("after")).toISOString());
      if (query.get("before")) q.set("before", new Date(query.get("before")).toISOString());
      let rows;
      if (query.get("status")) {
        // A delivery status belongs to a (message, endpoint) pair: ask each endpoint.
        q.set("status", query.get("status"));
        const eps = await api("GET", `/app/${enc(a.id)}/endpoint?limit=100`);
        const lists = await Promise.all(eps.data.slice(0, 20).map((e) => api("GET", `/app/${enc(a.id)}/endpoint/${enc(e.id)}/msg?${q}`)));
        const seen = new Map();
        lists.flatMap((l) => l.data).forEach((m) => seen.set(m.id, m));
        rows = [...seen.values()].sort((x, y) => (x.id < y.id ? 1 : -1)).slice(0, 50);
      } else {
        rows = (await api("GET", `/app/${enc(a.id)}/msg?${q}`)).data;
      }
      // How each message's deliveries went: asked of each endpoint (the first 20).
      const eps = await api("GET", `/app/${enc(a.id)}/endpoint?limit=100`);
      const perEndpoint = await Promise.all(eps.data.slice(0, 20).map((e) =>
        api("GET", `/app/${enc(a.id)}/endpoint/${enc(e.id)}/msg?limit=250&with_content=false`).then((p) => p.data).catch(() => [])));
      const statuses = new Map();
      perEndpoint.flat().forEach((m) => statuses.set(m.id, [...(statuses.get(m.id) || []), m.status]));
      return h("div", { class: "panel" }, table("Messages", [
        ["ID", (m) => link(`#/app/${enc(a.id)}/msg/${enc(m.id)}`, m.id), { mono: true }],
        ["Event type", (m) => m.eventType],
        ["Delivery", (m) => (statuses.has(m.id) ? statusBadge(worstStatus(statuses.get(m.id))) : h("span", { class: "muted" }, "-"))],
        ["Channels", (m) => (m.channels || []).join(", ") || "-", { wide: true }],
        ["Time", (m) => fmtTime(m.timestamp)],
      ], rows, (m) => (location.hash = `#/app/${enc(a.id)}/msg/${enc(m.id)}`)));
    });
    show(
      h("p", {}, link("#/", "Applications"), " / ", a.name),
      h("h1", {}, a.name, " ", h("span", { class: "muted mono" }, a.id)),
      a.uid === OPERATIONAL_UID
        ? h("p", { class: "badge", role: "note" }, "Herald's operational application: not a tenant. Its messages are Herald's own events; add an endpoint to receive them.")
        : "",
      endpoints.box,
      createForm("Add endpoint", "Create endpoint", [
        ["url", "URL", { type: "url", required: true, placeholder: "https://example.com/webhooks" }],
        ["description", "Description"],
        ["filterTypes", "Event types (comma-separated; empty: all)"],
      ], async (d) => {
        const types = (d.filterTypes || "").split(",").map((s) => s.trim()).filter(Boolean);
        const e = await api("POST", `/app/${enc(a.id)}/endpoint`, {
          url: d.url, description: d.description || "", filterTypes: types.length ? types : null,
        });
        return `#/app/${enc(a.id)}/ep/${enc(e.id)}`;
      }),
      destinations.box,
      h("h2", {}, "Find messages"),
      form,
      messages.box);
    await Promise.all([endpoints.refresh(), destinations.refresh(), messages.refresh()]);
    poll(() => Promise.all([endpoints.refresh(), destinations.refresh(), messages.refresh()]), LIVE_MS);
  }

  async function message({ app: appId, msg: msgId }) {
    current("apps");
    const [m, app] = await Promise.all([
      api("GET", `/app/${enc(appId)}/msg/${enc(msgId)}`),
      api("GET", `/app/${enc(appId)}`),
    ]);
    const deliveries = live(async () => {
      const targets = await api("GET", `/app/${enc(appId)}/msg/${enc(m.id)}/endpoint?limit=100`);
      const attempts = await api("GET", `/app/${enc(appId)}/attempt/msg/${enc(m.id)}?limit=100`);
      const urlOf = new Map(targets.data.map((d) => [d.id, d.url]));
      return [
        h("div", { class: "panel" }, table("Deliveries", [
          ["Endpoint", (d) => link(`#/app/${enc(appId)}/ep/${enc(d.id)}`, d.url)],
          ["Status", (d) => statusBadge(d.status)],
          ["Next attempt", (d) => fmtTime(d.nextAttempt), { wide: true }],
          ["", (d) => h("button", { type: "button", class: "secondary", onclick: async () => {
            await api("POST", `/app/${enc(appId)}/msg/${enc(m.id)}/endpoint/${enc(d.id)}/resend`);
            say("Resending to " + d.url);
            await deliveries.refresh();
          } }, "Resend")],
        ], targets.data)),
        h("div", { class: "panel" }, table("Attempts", [
          ["Attempt", (t) => link(`#/app/${enc(appId)}/msg/${enc(m.id)}/attempt/${enc(t.id)}`, t.id), { mono: true }],
          ["Endpoint", (t) => link(`#/app/${enc(appId)}/ep/${enc(t.endpointId)}`, urlOf.get(t.endpointId) || t.endpointId)],
          ["Result", (t) => httpBadge(t.responseStatusCode, t.response)],
          ["Time", (t) => fmtTime(t.timestamp)],
          ["Duration", (t) => t.responseDurationMs + " ms", { wide: true }],
          ["Trigger", (t) => (t.triggerType === 1 ? "manual" : "scheduled"), { wide: true }],
        ], attempts.data, (t) => (location.hash = `#/app/${enc(appId)}/msg/${enc(m.id)}/attempt/${enc(t.id)}`))),
      ];
    });
    show(
      h("p", {}, link("#/", "Applications"), " / ", link("#/app/" + enc(app.id), app.name), " / message"),
      h("h1", {}, "Message ", h("span", { class: "mono" }, m.id)),
      h("dl", { class: "kv panel" },
        h("dt", {}, "Event type"), h("dd", {}, m.eventType),
        h("dt", {}, "Event ID"), h("dd", {}, m.eventId || "-"),
        h("dt", {}, "Channels"), h("dd", {}, (m.channels || []).join(", ") || "-"),
        h("dt", {}, "Time"), h("dd", {}, fmtTime(m.timestamp))),
      h("h2", {}, "Payload"),
      h("pre", { tabindex: "0", "aria-label": "Payload" }, pretty(m.payload)),
      deliveries.box);
    await deliveries.refresh();
    poll(deliveries.refresh, LIVE_MS);
  }

  async function attempt({ app: appId, msg: msgId, attempt: attemptId }) {
    current("apps");
    const [t, m, app] = await Promise.all([
      api("GET", `/app/${enc(appId)}/msg/${enc(msgId)}/attempt/${enc(attemptId)}`),
      api("GET", `/app/${enc(appId)}/msg/${enc(msgId)}`),
      api("GET", `/app/${enc(appId)}`),
    ]);
    show(
      h("p", {}, link("#/", "Applications"), " / ", link("#/app/" + enc(app.id), app.name), " / ", link(`#/app/${enc(appId)}/msg/${enc(msgId)}`, m.eventId || m.id), " / attempt"),
      h("h1", {}, "Attempt ", h("span", { class: "mono" }, t.id)),
      h("section", { class: "panel", "aria-labelledby": "req" },
        h("h2", { id: "req" }, "Request"),
        h("dl", { class: "kv" },
          h("dt", {}, "Method and URL"), h("dd", { class: "mono" }, "POST " + t.url),
          h("dt", {}, "Headers"), h("dd", { class: "mono" }, `webhook-id: ${m.id}`, h("br"), "webhook-timestamp, webhook-signature (Standard Webhooks)", h("br"), "content-type: application/json"),
          h("dt", {}, "Trigger"), h("dd", {}, t.triggerType === 1 ? "manual" : "scheduled"),
          h("dt", {}, "Time"), h("dd", {}, fmtTime(t.timestamp))),
        h("h3", {}, "Body"),
        h("pre", { tabindex: "0", "aria-label": "Request body" }, pretty(m.payload))),
      h("section", { class: "panel", "aria-labelledby": "resp" },
        h("h2", { id: "resp" }, "Response"),
        h("dl", { class: "kv" },
          h("dt", {}, "Status"), h("dd", {}, httpBadge(t.responseStatusCode, t.response)),
          h("dt", {}, "Duration"), h("dd", {}, t.responseDurationMs + " ms")),
        h("h3", {}, "Body"),
        h("pre", { tabindex: "0", "aria-label": "Response body" }, t.response || "(empty)")));
  }

  async function endpoint({ app: appId, ep: epId }) {
    current("apps");
    const app = await api("GET", `/app/${enc(appId)}`);
    const dayAgo = () => new Date(Date.now() - 86400e3).toISOString();
    const body = live(async () => {
      const e = await api("GET", `/app/${enc(appId)}/endpoint/${enc(epId)}`);
      const stats = await api("GET", `/app/${enc(appId)}/endpoint/${enc(epId)}/stats`);
      const status = document.getElementById("att-status")?.value ?? "";
      const attempts = await api("GET", `/app/${enc(appId)}/attempt/endpoint/${enc(e.id)}?limit=250${status === "" ? "" : "&status=" + status}`);
      const stat = (label, value) => h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, String(value)));
      return [
        h("h1", {}, e.url),
        h("dl", { class: "kv panel" },
          h("dt", {}, "ID"), h("dd", { class: "mono" }, e.id),
          h("dt", {}, "State"), h("dd", {}, e.disabled ? "disabled" : "enabled"),
          h("dt", {}, "Event types"), h("dd", {}, (e.filterTypes || ["all"]).join(", ")),
          h("dt", {}, "Channels"), h("dd", {}, (e.channels || ["all"]).join(", ")),
          h("dt", {}, "Rate limit"), h("dd", {}, e.rateLimit ? e.rateLimit + "/s" : "none")),
        h("div", { class: "grid" }, stat("Succeeded", stats.success), stat("Pending", stats.pending), stat("Sending", stats.sending), stat("Failed", stats.fail)),
        chart("Deliveries to this endpoint", attempts.data),
        h("div", { class: "panel" }, table("Attempts", [
          ["Message", (t) => link(`#/app/${enc(appId)}/msg/${enc(t.msgId)}`, t.msgId), { mono: true }],
          ["Result", (t) => httpBadge(t.responseStatusCode, t.response)],
          ["Time", (t) => fmtTime(t.timestamp)],
          ["Duration", (t) => t.responseDurationMs + " ms", { wide: true }],
        ], attempts.data.slice(0, 50), (t) => (location.hash = `#/app/${enc(appId)}/msg/${enc(t.msgId)}/attempt/${enc(t.id)}`))),
      ];
    });
    const act = (label, cls, run) => h("button", { type: "button", class: cls, onclick: async () => {
      try { say(await run()); await body.refresh(); } catch (err) { say(err.message, true); }
    } }, label);
    const filter = h("label", { for: "att-status" }, "Attempts shown",
      h("select", { id: "att-status", onchange: () => body.refresh() },
        h("option", { value: "" }, "all"), h("option", { value: "0" }, "succeeded"), h("option", { value: "2" }, "failed")));
    show(
      h("p", {}, link("#/", "Applications"), " / ", link("#/app/" + enc(app.id), app.name), " / endpoint"),
      h("div", { class: "toolbar" },
        act("Recover failed (24 h)", "secondary", async () => { await api("POST", `/app/${enc(appId)}/endpoint/${enc(epId)}/recover`, { since: dayAgo() }); return "Recovering what failed in the last day"; }),
        act("Replay all (24 h)", "secondary", async () => { await api("POST", `/app/${enc(appId)}/endpoint/${enc(epId)}/bulk-replay`, { since: dayAgo() }); return "Replaying the last day"; }),
        act("Enable", "secondary", async () => { await api("PATCH", `/app/${enc(appId)}/endpoint/${enc(epId)}`, { disabled: false }); return "Enabled"; }),
        act("Disable", "danger", async () => { await api("PATCH", `/app/${enc(appId)}/endpoint/${enc(epId)}`, { disabled: true }); return "Disabled"; }),
        filter),
      body.box,
      await Herald.transformationPanel(api, appId, epId, (await api("GET", "/event-type?limit=250")).data));
    await body.refresh();
    poll(body.refresh, LIVE_MS);
  }

  async function destination({ app: appId, dest }) {
    current("apps");
    const app = await api("GET", `/app/${enc(appId)}`);
    const page = Herald.destinationPage(api, app.id, dest);
    show(h("p", {}, link("#/", "Applications"), " / ", link("#/app/" + enc(app.id), app.name), " / destination"), page.box);
    await page.refresh();
    poll(page.refresh, LIVE_MS);
  }

  /** People who sign in and API tokens (an admin's page). A new person's TOTP secret
   *  and a new token's key are shown once, here. */
  async function team() {
    current("team");
    const ROLES = ["admin", "developer", "support", "viewer"];
    const shown = h("pre", { id: "team-shown", "aria-live": "polite", hidden: true });
    const reveal = (text) => { shown.textContent = text; shown.hidden = false; };
    const lists = live(async () => {
      const [people, tokens] = await Promise.all([api("GET", "/person?limit=250"), api("GET", "/token?limit=250")]);
      return [
        h("div", { class: "panel" }, table("People", [
          ["Email", (p) => p.email],
          ["Role", (p) => p.role],
          ["Second factor", (p) => (p.totp ? "TOTP" : "-")],
          ["", (p) => h("button", { type: "button", class: "danger", onclick: async () => {
            if (!confirm(`Remove ${p.email}?`)) return;
            try { await api("DELETE", "/person/" + enc(p.id)); say("Removed " + p.email); await lists.refresh(); } catch (err) { say(err.message, true); }
          } }, "Remove")],
        ], people.data)),
        h("div", { class: "panel" }, table("API tokens", [
          ["Name", (t) => t.name],
          ["Role", (t) => t.role],
          ["Last used", (t) => fmtTime(t.lastUsedAt)],
          ["Expires", (t) => fmtTime(t.expiresAt), { wide: true }],
          ["", (t) => h("button", { type: "button", class: "danger", onclick: async () => {
            if (!confirm(`Revoke ${t.name}?`)) return;
            try { await api("DELETE", "/token/" + enc(t.id)); say("Revoked " + t.name); await lists.refresh(); } catch (err) { say(err.message, true); }
          } }, "Revoke")],
        ], tokens.data)),
      ];
    });
    const roleSelect = (id) => h("select", { id }, ROLES.map((r) => h("option", { value: r }, r)));
    const email = h("input", { id: "person-email", type: "email", required: true });
    const password = h("input", { id: "person-password", type: "password", minlength: "12", required: true, autocomplete: "new-password" });
    const personRole = roleSelect("person-role");
    const totp = h("input", { id: "person-totp", type: "checkbox" });
    const addPerson = h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const p = await api("POST", "/person", { email: email.value.trim(), password: password.value, role: personRole.value, totp: totp.checked });
        say("Added " + p.email);
        if (p.totpSetup) reveal(`TOTP secret for ${p.email} (shown once): ${p.totpSetup.secret}\n${p.totpSetup.url}`);
        await lists.refresh();
      } catch (err) { say(err.message, true); }
    } },
      h("label", { for: "person-email" }, "Email", email),
      h("label", { for: "person-password" }, "Password (12 characters or more)", password),
      h("label", { for: "person-role" }, "Role", personRole),
      h("label", { for: "person-totp" }, totp, " TOTP second factor"),
      h("button", { type: "submit" }, "Add person"));
    const tokenName = h("input", { id: "token-name", required: true });
    const tokenRole = roleSelect("token-role");
    const makeToken = h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const t = await api("POST", "/token", { name: tokenName.value.trim(), role: tokenRole.value });
        reveal(`Key of ${t.name} (shown once): ${t.key}`);
        say("Made " + t.name);
        await lists.refresh();
      } catch (err) { say(err.message, true); }
    } },
      h("label", { for: "token-name" }, "Token name", tokenName),
      h("label", { for: "token-role" }, "Role", tokenRole),
      h("button", { type: "submit" }, "Make token"));
    show(h("h1", {}, "Team"),
      h("p", { class: "muted" }, "People sign in to this console as themselves; tokens are for programs. Roles: admin (everything), developer (everything but people and tokens), support (read, resend and replay), viewer (read, no secrets)."),
      lists.box,
      h("details", { class: "panel" }, h("summary", {}, "Add a person"), addPerson),
      h("details", { class: "panel" }, h("summary", {}, "Make an API token"), makeToken),
      shown);
    await lists.refresh();
  }

  /** The audit trail: who changed what, when and from where, refusals included. */
  async function audit() {
    current("audit");
    const actor = h("input", { id: "audit-actor", placeholder: "tok_… or per_…" });
    const object = h("input", { id: "audit-object", placeholder: "app_…, ep_…" });
    const refused = h("input", { id: "audit-refused", type: "checkbox" });
    const list = live(async () => {
      const q = new URLSearchParams({ limit: "100" });
      if (actor.value.trim()) q.set("actor_id", actor.value.trim());
      if (object.value.trim()) q.set("object_id", object.value.trim());
      if (refused.checked) q.set("allowed", "false");
      const page = await api("GET", "/audit?" + q);
      return h("div", { class: "panel" }, table("Audit trail", [
        ["Time", (e) => fmtTime(e.timestamp)],
        ["Who", (e) => `${e.actorName} (${e.role})`],
        ["Request", (e) => `${e.method} ${e.route}`, { mono: true }],
        ["Object", (e) => e.objectId || "-", { mono: true, wide: true }],
        ["Answer", (e) => h("span", { class: "badge " + (e.allowed ? (e.status < 400 ? "ok" : "warn") : "bad") }, e.allowed ? String(e.status) : "refused")],
        ["From", (e) => e.source || "-", { wide: true }],
      ], page.data, (e) => say(e.detail ? `${e.method} ${e.path}: ${e.detail}` : `${e.method} ${e.path}`)));
    });
    const form = h("form", { class: "inline", onsubmit: async (ev) => { ev.preventDefault(); await list.refresh(); } },
      h("label", { for: "audit-actor" }, "Who (token or person id)", actor),
      h("label", { for: "audit-object" }, "Object id", object),
      h("label", { for: "audit-refused" }, refused, " Refused only"),
      h("button", { type: "submit" }, "Filter"));
    show(h("h1", {}, "Audit trail"),
      h("p", { class: "muted" }, "Every change made through the API, the console, the portal and the CLI, and every refused one. Secrets are redacted; nothing here can be changed."),
      form, list.box);
    await list.refresh();
  }

  async function eventTypes() {
    current("event-types");
    const page = await api("GET", "/event-type?limit=250&include_archived=true");
    show(h("h1", {}, "Event types"), h("div", { class: "panel" }, table("Event types", [
      ["Name", (t) => link("#/event-type/" + enc(t.name), t.name)],
      ["Description", (t) => t.description || "-"],
      ["Schema", (t) => (t.schemas && Object.keys(t.schemas).length ? "yes" : "-")],
      ["Archived", (t) => (t.archived ? "archived" : ""), { wide: true }],
    ], page.data, (t) => (location.hash = "#/event-type/" + enc(t.name)))));
  }

  async function eventType({ name }) {
    current("event-types");
    const t = await api("GET", "/event-type/" + enc(name));
    const versions = Object.keys(t.schemas || {}).sort();
    const latest = versions.length ? t.schemas[versions[versions.length - 1]] : null;
    const desc = h("input", { id: "et-desc", value: t.description || "" });
    const schema = h("textarea", { id: "et-schema", spellcheck: "false" }, latest ? JSON.stringify(latest, null, 2) : "");
    const exampleBox = h("textarea", { id: "et-example", spellcheck: "false" }, JSON.stringify(Herald.example(latest || {}), null, 2));
    const verdict = h("div", { role: "status", "aria-live": "polite" });
    const parse = (text, what) => { try { return text.trim() ? JSON.parse(text) : null; } catch (e) { throw new Error(`${what} is not JSON: ${e.message}`); } };
    show(
      h("p", {}, link("#/event-types", "Event types"), " / ", t.name),
      h("h1", {}, t.name),
      h("form", { class: "panel", onsubmit: async (e) => {
        e.preventDefault();
        try {
          const s = parse(schema.value, "The schema");
          await api("PATCH", "/event-type/" + enc(t.name), { description: desc.value, schemas: s ? { [versions[versions.length - 1] || "1"]: s } : null });
          say("Saved " + t.name);
        } catch (err) { say(err.message, true); }
      } },
        h("label", { for: "et-desc" }, "Description", desc),
        h("label", { for: "et-schema" }, "JSON Schema (latest version)", schema),
        h("button", { type: "submit" }, "Save")),
      h("div", { class: "panel" },
        h("h2", {}, "Check an example"),
        h("label", { for: "et-example" }, "Example payload", exampleBox),
        h("button", { type: "button", onclick: () => {
          try {
            const errors = Herald.validate(parse(schema.value, "The schema") || {}, parse(exampleBox.value, "The example"));
            verdict.replaceChildren(errors.length
              ? h("ul", { class: "error" }, errors.map((e) => h("li", {}, e)))
              : h("p", { class: "badge ok" }, "The example matches the schema"));
          } catch (err) { verdict.replaceChildren(h("p", { class: "error" }, err.message)); }
        } }, "Validate"),
        verdict));
  }

  async function sources() {
    current("sources");
    const list = live(async () => {
      const page = await api("GET", "/source?limit=100");
      return h("div", { class: "panel" }, table("Sources", [
        ["Name", (s) => link("#/source/" + enc(s.id), s.name)],
        ["Scheme", (s) => s.scheme],
        ["Ingest URL", (s) => s.ingestUrl, { mono: true }],
        ["Destinations", (s) => String(s.destinations.length), { wide: true }],
      ], page.data, (s) => (location.hash = "#/source/" + enc(s.id))));
    });
    const create = createForm("New source", "Create source", [
      ["name", "Name", { required: true }],
      ["scheme", "Scheme", { options: SCHEMES }],
      ["secret", "Provider's secret", { type: "password" }],
      ["forwardTo", "Forward to (URL)", { type: "url", placeholder: "https://ci.internal/hooks" }],
    ], async (d) => {
      const s = await api("POST", "/source", {
        name: d.name, scheme: d.scheme, secret: d.secret || null,
        destinations: d.forwardTo ? [{ url: d.forwardTo }] : [],
      });
      return "#/source/" + enc(s.id);
    });
    show(h("h1", {}, "Sources"),
      h("p", { class: "muted" }, "Third-party webhooks (GitHub, Stripe, Slack…) arrive at a source's ingest URL, are verified, stored and forwarded to its destinations."),
      create, list.box);
    await list.refresh();
    poll(() => list.refresh(), LIVE_MS);
  }

  async function source({ source: sourceId }) {
    current("sources");
    const body = live(async () => {
      const s = await api("GET", "/source/" + enc(sourceId));
      const requests = await api("GET", `/source/${enc(sourceId)}/request?limit=50`);
      return [
        h("h1", {}, s.name),
        h("dl", { class: "kv panel" },
          h("dt", {}, "Ingest URL"), h("dd", { class: "mono" }, s.ingestUrl),
          h("dt", {}, "Scheme"), h("dd", {}, s.scheme),
          h("dt", {}, "Application"), h("dd", {}, link("#/app/" + enc(s.appId), s.appId)),
          h("dt", {}, "ID"), h("dd", { class: "mono" }, s.id)),
        h("div", { class: "panel" }, table("Destinations", [
          ["URL", (d) => link(`#/app/${enc(s.appId)}/ep/${enc(d.endpointId)}`, d.url)],
          ["Event types", (d) => (d.filterTypes || ["all"]).join(", ")],
          ["State", (d) => (d.disabled ? "disabled" : "enabled"), { wide: true }],
        ], s.destinations)),
        h("div", { class: "panel" }, table("Requests", [
          ["Time", (r) => fmtTime(r.receivedAt)],
          ["Verified", (r) => h("span", { class: "badge " + (r.verified ? "ok" : "bad") }, r.verified ? "accepted" : "refused")],
          ["What became of it", (r) => (r.msgId ? link(`#/app/${enc(s.appId)}/msg/${enc(r.msgId)}`, r.msgId) : r.reason || "-")],
        ], requests.data)),
      ];
    });
    show(h("p", {}, link("#/sources", "Sources"), " / source"), body.box);
    await body.refresh();
    poll(() => body.refresh(), LIVE_MS);
  }

  async function health() {
    current("health");
    const stats = live(healthStats);
    const raw = live(async () => h("pre", { tabindex: "0" }, pretty(await fetch("/api/v1/health").then((r) => r.json()))));
    show(h("h1", {}, "Health"), stats.box, h("h2", {}, "As /api/v1/health reports it"), raw.box);
    await Promise.all([stats.refresh(), raw.refresh()]);
    poll(() => Promise.all([stats.refresh(), raw.refresh()]), LIVE_MS);
  }

  const run = router([
    ["#/", apps],
    ["#/app/:app", app],
    ["#/app/:app/msg/:msg", message],
    ["#/app/:app/msg/:msg/attempt/:attempt", attempt],
    ["#/app/:app/ep/:ep", endpoint],
    ["#/app/:app/dest/:dest", destination],
    ["#/event-types", eventTypes],
    ["#/sources", sources],
    ["#/source/:source", source],
    ["#/event-type/:name", eventType],
    ["#/health", health],
    ["#/audit", audit],
    ["#/team", team],
  ], () => (location.hash = "#/"));

  /** Which environment the console is in, and (for someone signed in with a role in
   *  several) a list to change it, which starts the console again in the chosen one. */
  async function showEnvironment() {
    const picker = document.getElementById("environment");
    picker.replaceChildren();
    picker.hidden = true;
    let info;
    try {
      info = await api("GET", "/environment");
    } catch (_) {
      return;
    }
    if (info.available.length < 2 && info.name === "default") return;
    for (const name of info.available) {
      picker.append(h("option", { value: name }, name));
    }
    picker.value = info.name;
    picker.disabled = info.available.length < 2;
    picker.hidden = false;
  }

  document.getElementById("environment").addEventListener("change", (e) => {
    sessionStorage.setItem(ENVIRONMENT, e.target.value);
    Herald.stopPolling();
    showEnvironment();
    if (location.hash === "#/" || location.hash === "") run();
    else location.hash = "#/";
  });

  function start() {
    document.getElementById("signout").hidden = false;
    showEnvironment();
    run();
  }

  document.getElementById("signout").addEventListener("click", async () => {
    Herald.stopPolling();
    if (sessionStorage.getItem(CSRF)) {
      // The session ends on the server at once.
      await fetch("/api/v1/session", { method: "DELETE", credentials: "same-origin" }).catch(() => {});
    }
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(CSRF);
    sessionStorage.removeItem(ENVIRONMENT);
    document.getElementById("environment").hidden = true;
    signIn();
  });

  if (sessionStorage.getItem(TOKEN) || sessionStorage.getItem(CSRF)) start();
  else resumeSession().then((resumed) => (resumed ? start() : signIn()));
})();
