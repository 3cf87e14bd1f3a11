// The API reference, rendered in the browser from /api/v1/openapi.json (the document
// the server builds from its own route table), with nothing loaded from elsewhere.
"use strict";

(async () => {
  const { h, say } = Herald;
  const main = document.getElementById("main");
  let doc;
  try {
    doc = await fetch("/api/v1/openapi.json").then((r) => r.json());
  } catch (e) {
    say("Could not load the OpenAPI document: " + e.message, true);
    return;
  }
  const schemas = (doc.components && doc.components.schemas) || {};

  /** A schema with its $refs replaced (cycles stop at the second visit). */
  function resolve(schema, seen) {
    seen = seen || new Set();
    if (!schema || typeof schema !== "object") return schema;
    if (schema.$ref) {
      const name = schema.$ref.split("/").pop();
      if (seen.has(name)) return { type: "object", description: name };
      return resolve(schemas[name], new Set([...seen, name]));
    }
    const out = Array.isArray(schema) ? [] : {};
    for (const [k, v] of Object.entries(schema)) out[k] = resolve(v, seen);
    if (out.oneOf || out.anyOf) {
      const options = (out.oneOf || out.anyOf).filter((o) => o && o.type !== "null");
      if (options.length === 1) return Object.assign({}, options[0], { description: out.description || options[0].description });
    }
    return out;
  }

  function schemaBlock(title, schema) {
    const s = resolve(schema);
    if (!s) return null;
    const body = s.properties ? Herald.fields(s) : s.items && s.items.properties ? Herald.fields(s.items) : h("p", { class: "muted" }, s.type || "JSON");
    return h("details", {}, h("summary", {}, title), body);
  }

  const byTag = new Map();
  for (const [path, ops] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(ops)) {
      const tag = (op.tags && op.tags[0]) || "Other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ path, method, op });
    }
  }
  const slug = (t) => t.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  const nav = document.getElementById("tags");
  nav.replaceChildren(...[...byTag.keys()].map((t) => h("a", { href: "#" + slug(t) }, t)));

  main.replaceChildren(
    h("h1", {}, (doc.info && doc.info.title) || "API reference", " ", h("span", { class: "muted" }, (doc.info && doc.info.version) || "")),
    h("p", {}, (doc.info && doc.info.description) || ""),
    h("p", { class: "muted" }, "Authenticate with Authorization: Bearer <token>. Errors are JSON with a stable code."),
    ...[...byTag.entries()].map(([tag, ops]) => h("section", { id: slug(tag), "aria-labelledby": "h-" + slug(tag) },
      h("h2", { id: "h-" + slug(tag) }, tag),
      ...ops.map(({ path, method, op }) => {
        const okCode = Object.keys(op.responses || {}).find((c) => c.startsWith("2"));
        const ok = okCode && op.responses[okCode];
        const okSchema = ok && ok.content && ok.content["application/json"] && ok.content["application/json"].schema;
        const reqSchema = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"] && op.requestBody.content["application/json"].schema;
        const params = (op.parameters || []).map((p) => h("li", {}, h("code", {}, p.name), " ", h("span", { class: "muted" }, `${p.in}${p.required ? ", required" : ""}`), p.description ? " — " + p.description : ""));
        return h("article", { class: "panel", id: op.operationId || null },
          h("h3", {}, h("span", { class: "method" }, method.toUpperCase()), " ", h("code", {}, path)),
          h("p", {}, op.summary || ""),
          params.length ? h("ul", { class: "fields" }, params) : null,
          reqSchema ? schemaBlock("Request body", reqSchema) : null,
          okCode ? (okSchema ? schemaBlock(`Response ${okCode}`, okSchema) : h("p", { class: "muted" }, `Response ${okCode}`)) : null,
          op.security && op.security.length === 0 ? h("p", { class: "muted" }, "No authentication.") : null);
      }))));
})();
