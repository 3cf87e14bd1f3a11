// End-to-end check of Herald with the official Svix JavaScript SDK (npm `svix`): create
// an application, event type and endpoint, send a message, verify the delivery with the
// SDK's own verifier, and read the log back. Exits non-zero on any failure.
const http = require("http");
const { Svix, Webhook } = require("svix");
const token = process.env.HERALD_TOKEN, url = process.env.HERALD_URL;
const svix = new Svix(token, { serverUrl: url });
(async () => {
  let got;
  const received = new Promise((res) => { got = res; });
  const server = http.createServer((req, resp) => {
    let body = ""; req.on("data", (c) => (body += c));
    req.on("end", () => { got({ headers: req.headers, body }); resp.writeHead(204); resp.end(); });
  }).listen(0, "127.0.0.1");
  await new Promise((r) => server.on("listening", r));
  const port = server.address().port;
  const app = await svix.application.getOrCreate({ name: "js", uid: "js-app" });
  await svix.eventType.create({ name: "js.created", description: "js" }).catch((e) => { if (e.code !== 409) throw e; });
  const ep = await svix.endpoint.create(app.id, { url: `http://127.0.0.1:${port}/hook`, filterTypes: ["js.created"] });
  const secret = (await svix.endpoint.getSecret(app.id, ep.id)).key;
  const msg = await svix.message.create(app.id, { eventType: "js.created", payload: { hello: "js" } });
  const d = await received;
  const verified = new Webhook(secret).verify(d.body, d.headers);
  if (verified.hello !== "js") throw new Error("bad payload");
  let attempts;
  for (let i = 0; i < 50; i++) { attempts = await svix.messageAttempt.listByMsg(app.id, msg.id); if (attempts.data.length) break; await new Promise(r => setTimeout(r, 50)); }
  if (!attempts.data.length) throw new Error("no attempts");
  const list = await svix.message.list(app.id, { limit: 10 });
  const eps = await svix.endpoint.list(app.id);
  const stats = await svix.endpoint.getStats(app.id, ep.id);
  await svix.endpoint.rotateSecret(app.id, ep.id, {});
  const hdrs = await svix.endpoint.getHeaders(app.id, ep.id);
  await svix.messageAttempt.resend(app.id, msg.id, ep.id);
  const apps = await svix.application.list({ limit: 1 });
  console.log("SVIX JS SDK E2E OK", msg.id, attempts.data[0].responseStatusCode, list.data.length, eps.data.length, stats.success, Object.keys(hdrs.headers).length, apps.data.length);
  server.close();
})().catch((e) => { console.error("FAILED", e); process.exit(1); });
