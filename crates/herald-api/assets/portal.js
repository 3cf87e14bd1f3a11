// The consumer portal: one application's endpoints and destinations, their secrets, the message and
// attempt log, replay, and the event catalog. Opened with a magic link
// (/portal/{app}#token=…): the token is read from the fragment, which browsers never
// send to a server, kept in this tab's sessionStorage, and removed from the address bar.
"use strict";

(() => {
  const { h, fmtTime, statusBadge, httpBadge, table, link, say, poll, router, pretty, show, current, live } = Herald;
  const TOKEN = "herald.portal.token";
  const enc = encodeURIComponent;
  const appId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
  const LIVE_MS = 3000;

  // Branding from the server's settings.
  const color = document.querySelector('meta[name="herald-brand-color"]').content;
  if (/^#[0-9a-fA-F]{6}$/.test(color)) document.documentElement.style.setProperty("--brand", color);
  const logo = document.querySelector('meta[name="herald-logo-url"]').content;
  if (logo) document.getElementById("brand").prepend(h("img", { src: logo, alt: "" }));

  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN, fromLink);
    history.replaceState(null, "", location.pathname + "#/");
  }
  const request = Herald.client(TOKEN);
  async function api(method, path, body) {
    try {
      return await request(method, path, body);
    } catch (err) {
      if (err.status === 401) expired();
      throw err;
    }
  }
  const base = `/app/${enc(appId)}`;

  function expired() {
    Herald.stopPolling();
    show(h("div", { class: "panel" }, h("h1", {}, "This link is no longer valid"),
      h("p", {}, "Portal links expire. Ask the service that sent you here for a new one.")));
  }
  async function eventTypeNames() {
    const page = await api("GET", "/event-type?limit=250");
    return page.data;
  }

  async function endpoints() {
    current("endpoints");
    const list = live(async () => {
      const page = await api("GET", `${base}/endpoint?limit=100`);
      return h("div", { class: "panel" }, table("Your endpoints", [
        ["URL", (e) => link("#/ep/" + enc(e.id), e.url)],
        ["State", (e) => h("span", { class: "badge " + (e.disabled ? "bad" : "ok") }, e.disabled ? "disabled" : "enabled")],
        ["Event types", (e) => (e.filterTypes || ["all"]).join(", "), { wide: true }],
      ], page.data, (e) => (location.hash = "#/ep/" + enc(e.id))));
    });
    const destinations = Herald.destinationsPanel(api, appId, (d) => "#/dest/" + enc(d.id));
    show(h("h1", {}, "Endpoints"),
      h("div", { class: "toolbar" }, h("button", { type: "button", onclick: () => (location.hash = "#/new") }, "Add endpoint")),
      list.box,
      h("h2", {}, "Destinations"),
      h("p", { class: "muted" }, "Messages in order: batches POSTed to a URL of yours (fifoEndpoint), or read when you ask (pollingEndpoint)."),
      destinations.box);
    await Promise.all([list.refresh(), destinations.refresh()]);
    poll(() => Promise.all([list.refresh(), destinations.refresh()]), LIVE_MS);
  }

  /** The endpoint form, for a new endpoint or an existing one. */
  function endpointForm(types, e, onSave) {
    const chosen = new Set((e && e.filterTypes) || []);
    const url = h("input", { id: "ep-url", type: "url", required: true, value: e ? e.url : "", placeholder: "https://example.com/webhooks" });
    const description = h("input", { id: "ep-description", value: e ? e.description : "" });
    const channels = h("input", { id: "ep-channels", value: e && e.channels ? e.channels.join(", ") : "", placeholder: "all" });
    const rate = h("input", { id: "ep-rate", type: "number", min: "1", value: e && e.rateLimit ? e.rateLimit : "" });
    const enabled = h("input", { id: "ep-enabled", type: "checkbox", checked: !e || !e.disabled });
    const headers = h("textarea", { id: "ep-headers", spellcheck: "false", placeholder: "X-Api-Key: value" });
    const boxes = types.map((t) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "eventType", value: t.name, checked: chosen.has(t.name) }), " ", t.name));
    const form = h("form", { class: "panel", onsubmit: async (ev) => {
      ev.preventDefault();
      const picked = [...form.querySelectorAll('input[name="eventType"]:checked')].map((i) => i.value);
      const chans = channels.value.split(",").map((s) => s.trim()).filter(Boolean);
      const hdrs = Object.fromEntries(headers.value.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
        const i = l.indexOf(":");
        return [l.slice(0, i).trim(), l.slice(i + 1).trim()];
      }));
      try {
        await onSave({
          url: url.value.trim(),
          description: description.value,
          filterTypes: picked.length ? picked : null,
          channels: chans.length ? chans : null,
          rateLimit: rate.value ? Number(rate.value) : null,
          disabled: !enabled.checked,
        }, hdrs);
      } catch (err) { say(err.message, true); }
    } },
      h("label", { for: "ep-url" }, "Endpoint URL", url),
      h("label", { for: "ep-description" }, "Description", description),
      h("fieldset", {}, h("legend", {}, "Event types (none checked: all)"), boxes.length ? boxes : h("p", { class: "muted" }, "No event types are defined.")),
      h("label", { for: "ep-channels" }, "Channels (comma-separated; empty: all)", channels),
      h("label", { for: "ep-rate" }, "Rate limit (deliveries per second; empty: none)", rate),
      h("label", { for: "ep-headers" }, "Custom headers (one \"Name: value\" per line; empty keeps the current ones)", headers),
      h("label", { class: "check", for: "ep-enabled" }, enabled, " Enabled"),
      h("button", { type: "submit" }, e ? "Save" : "Create endpoint"));
    return form;
  }

  async function newEndpoint() {
    current("endpoints");
    const types = await eventTypeNames();
    show(h("p", {}, link("#/", "Endpoints"), " / new"), h("h1", {}, "Add an endpoint"),
      endpointForm(types, null, async (body, headers) => {
        if (Object.keys(headers).length) body.headers = headers;
        const e = await api("POST", `${base}/endpoint`, body);
        say("Endpoint created");
        location.hash = "#/ep/" + enc(e.id);
      }));
    document.getElementById("ep-url").focus();
  }

  async function endpoint({ id }) {
    current("endpoints");
    const [e, types] = await Promise.all([api("GET", `${base}/endpoint/${enc(id)}`), eventTypeNames()]);
    const transformation = await Herald.transformationPanel(api, appId, e.id, types);
    const secret = h("code", { id: "secret", class: "mono" }, "••••••••••••");
    const exampleType = h("select", { id: "example-type" }, types.map((t) => h("option", { value: t.name }, t.name)));
    const attempts = live(async () => {
      const page = await api("GET", `${base}/attempt/endpoint/${enc(e.id)}?limit=50`);
      return h("div", { class: "panel" }, table("Attempts", [
        ["Message", (t) => link("#/msg/" + enc(t.msgId), t.msgId), { mono: true }],
        ["Result", (t) => httpBadge(t.responseStatusCode, t.response)],
        ["Time", (t) => fmtTime(t.timestamp)],
        ["Response", (t) => (t.response || "").slice(0, 80), { wide: true }],
      ], page.data, (t) => (location.hash = "#/msg/" + enc(t.msgId))));
    });
    const action = (label, cls, run) => h("button", { type: "button", class: cls, onclick: async () => {
      try { say(await run()); await attempts.refresh(); } catch (err) { say(err.message, true); }
    } }, label);
    show(
      h("p", {}, link("#/", "Endpoints"), " / endpoint"),
      h("h1", {}, e.url),
      h("section", { class: "panel", "aria-labelledby": "sec" },
        h("h2", { id: "sec" }, "Signing secret"),
        h("p", {}, secret),
        h("div", { class: "toolbar" },
          action("Reveal secret", "secondary", async () => {
            secret.textContent = (await api("GET", `${base}/endpoint/${enc(e.id)}/secret`)).key;
            // An ed25519 endpoint shows its public key: all a receiver needs, and safe to share.
            return secret.textContent.startsWith("whpk_")
              ? "Public key shown: this endpoint signs with ed25519 (v1a); verify with this key"
              : "Secret shown";
          }),
          action("Rotate secret", "danger", async () => {
            secret.textContent = (await api("POST", `${base}/endpoint/${enc(e.id)}/secret/rotate`, {})).key;
            return "Secret rotated: the old one keeps signing for a day";
          })),
        h("p", { class: "muted" }, "Verify each delivery with this secret: see the event catalog for code.")),
      h("section", { class: "panel", "aria-labelledby": "try" },
        h("h2", { id: "try" }, "Test it"),
        h("div", { class: "toolbar" },
          h("label", { for: "example-type" }, "Event type", exampleType),
          action("Send example", "", async () => {
            const m = await api("POST", `${base}/endpoint/${enc(e.id)}/send-example`, { eventType: exampleType.value });
            return "Example sent: " + m.id;
          }),
          action("Replay failed (7 days)", "secondary", async () => {
            await api("POST", `${base}/endpoint/${enc(e.id)}/recover`, { since: new Date(Date.now() - 7 * 86400e3).toISOString() });
            return "Sending again what failed";
          }))),
      transformation,
      attempts.box,
      h("h2", {}, "Settings"),
      endpointForm(types, e, async (body, headers) => {
        await api("PATCH", `${base}/endpoint/${enc(e.id)}`, body);
        if (Object.keys(headers).length) await api("PUT", `${base}/endpoint/${enc(e.id)}/headers`, { headers });
        say("Saved");
      }),
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm("Delete this endpoint?")) return;
        await api("DELETE", `${base}/endpoint/${enc(e.id)}`);
        location.hash = "#/";
      } }, "Delete endpoint"));
    await attempts.refresh();
    poll(attempts.refresh, LIVE_MS);
  }

  async function destination({ id }) {
    current("endpoints");
    const page = Herald.destinationPage(api, appId, id);
    show(h("p", {}, link("#/", "Endpoints"), " / destination"), page.box);
    await page.refresh();
    poll(page.refresh, LIVE_MS);
  }

  async function messages() {
    current("messages");
    const list = live(async () => {
      const page = await api("GET", `${base}/msg?limit=50&with_content=false`);
      return h("div", { class: "panel" }, table("Messages", [
        ["ID", (m) => link("#/msg/" + enc(m.id), m.id), { mono: true }],
        ["Event type", (m) => m.eventType],
        ["Time", (m) => fmtTime(m.timestamp)],
      ], page.data, (m) => (location.hash = "#/msg/" + enc(m.id))));
    });
    show(h("h1", {}, "Messages"), list.box);
    await list.refresh();
    poll(list.refresh, LIVE_MS);
  }

  async function message({ id }) {
    current("messages");
    const m = await api("GET", `${base}/msg/${enc(id)}`);
    const body = live(async () => {
      const [targets, attempts] = await Promise.all([
        api("GET", `${base}/msg/${enc(m.id)}/endpoint?limit=100`),
        api("GET", `${base}/attempt/msg/${enc(m.id)}?limit=100`),
      ]);
      return [
        h("div", { class: "panel" }, table("Deliveries", [
          ["Endpoint", (d) => link("#/ep/" + enc(d.id), d.url)],
          ["Status", (d) => statusBadge(d.status)],
          ["", (d) => h("button", { type: "button", class: "secondary", onclick: async () => {
            await api("POST", `${base}/msg/${enc(m.id)}/endpoint/${enc(d.id)}/resend`);
            say("Resending");
            await body.refresh();
          } }, "Resend")],
        ], targets.data)),
        h("div", { class: "panel" }, table("Attempts", [
          ["Result", (t) => httpBadge(t.responseStatusCode, t.response)],
          ["Time", (t) => fmtTime(t.timestamp)],
          ["Duration", (t) => t.responseDurationMs + " ms"],
          ["Response", (t) => (t.response || "").slice(0, 120), { wide: true, mono: true }],
        ], attempts.data)),
      ];
    });
    show(h("p", {}, link("#/messages", "Messages"), " / message"),
      h("h1", {}, m.eventType, " ", h("span", { class: "mono muted" }, m.id)),
      h("pre", { tabindex: "0", "aria-label": "Payload" }, pretty(m.payload)),
      body.box);
    await body.refresh();
    poll(body.refresh, LIVE_MS);
  }

  const SNIPPETS = {
    Python: `from standardwebhooks.webhooks import Webhook   # pip install standardwebhooks

wh = Webhook(secret)   # the endpoint's signing secret, whsec_…
payload = wh.verify(request_body, request_headers)   # raises if the signature is wrong`,
    JavaScript: `import { Webhook } from "standardwebhooks";   // npm install standardwebhooks

const wh = new Webhook(secret);   // the endpoint's signing secret, whsec_…
const payload = wh.verify(rawBody, headers);   // throws if the signature is wrong`,
    Go: `import standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

wh, err := standardwebhooks.NewWebhook(secret) // whsec_…
err = wh.Verify(body, r.Header)               // nil when the signature is right`,
    Rust: `// cargo add standardwebhooks
let wh = standardwebhooks::Webhook::new(secret)?;   // whsec_…
wh.verify(&body, &headers)?;                        // Err when the signature is wrong`,
  };

  async function catalog() {
    current("catalog");
    const types = await eventTypeNames();
    const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Language" });
    const code = h("pre", { id: "snippet", role: "tabpanel", tabindex: "0" });
    const pick = (lang) => {
      code.textContent = SNIPPETS[lang];
      tabs.querySelectorAll("button").forEach((b) => b.setAttribute("aria-selected", String(b.textContent === lang)));
    };
    Object.keys(SNIPPETS).forEach((lang) => tabs.append(h("button", { type: "button", role: "tab", "aria-selected": "false", onclick: () => pick(lang) }, lang)));
    pick("Python");
    show(
      h("h1", {}, "Event catalog"),
      h("section", { class: "panel", "aria-labelledby": "verify" },
        h("h2", { id: "verify" }, "Verifying deliveries"),
        h("p", {}, "Each delivery is a POST with a JSON body and three headers: webhook-id, webhook-timestamp and webhook-signature (Standard Webhooks). Check the signature with your endpoint's secret before trusting the body, and use the raw body as received."),
        tabs, code),
      types.length ? types.map((t) => {
        const versions = Object.keys(t.schemas || {}).sort();
        const schema = versions.length ? t.schemas[versions[versions.length - 1]] : null;
        return h("section", { class: "panel", "aria-labelledby": "et-" + t.name },
          h("h2", { id: "et-" + t.name }, t.name, t.deprecated ? h("span", { class: "badge warn" }, "deprecated") : null),
          h("p", {}, t.description || h("span", { class: "muted" }, "No description.")),
          schema ? h("details", { open: true }, h("summary", {}, "Fields"), Herald.fields(schema)) : null,
          h("details", {}, h("summary", {}, "Example payload"), h("pre", { tabindex: "0" }, pretty(schema ? Herald.example(schema) : {}))));
      }) : h("p", { class: "muted" }, "No event types are defined yet."));
  }

  if (!sessionStorage.getItem(TOKEN)) {
    expired();
    return;
  }
  router([
    ["#/", endpoints],
    ["#/new", newEndpoint],
    ["#/ep/:id", endpoint],
    ["#/dest/:id", destination],
    ["#/messages", messages],
    ["#/msg/:id", message],
    ["#/catalog", catalog],
  ], () => (location.hash = "#/"))();
})();
