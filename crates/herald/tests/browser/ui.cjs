// Browser tests of Herald's pages in Debian's headless Chromium, driven by
// playwright-core. Run by crates/herald/tests/it/ui.rs, which starts the server and
// passes: HERALD_URL, HERALD_ADMIN_TOKEN, APP_A (with a delivered message MSG_A),
// PORTAL_A (app A's portal link), APP_B, APP_C (with a message MSG_C whose attempt found
// nothing listening), EVENT_TYPE, SCREENSHOTS (a folder, or ""), and OIDC_PORT (where this
// script runs an OpenID provider, npm oidc-provider, for the server's single sign-on).
"use strict";
const http = require("node:http");
const assert = require("node:assert/strict");
const { chromium } = require("playwright-core");

async function main() {

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const base = env("HERALD_URL");
const origin = new URL(base).origin;

// A local receiver the portal test points an endpoint at, and can make fail.
let failing = false;
let received = 0;
let lastBody = "";
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    received += 1;
    lastBody = Buffer.concat(chunks).toString();
    res.writeHead(failing ? 500 : 200, { "content-type": "application/json" });
    res.end(failing ? '{"error":"receiver is failing"}' : '{"ok":true}');
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const receiverUrl = `http://127.0.0.1:${receiver.address().port}/hooks`;

// The OpenID provider: one client (the server), RS256 ID tokens, PKCE required, and its
// development login form, where any login is an account whose email is that login.
const providerModule = require("oidc-provider");
const Provider = providerModule.default || providerModule;
const { generateKeyPairSync } = require("node:crypto");
const signingKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
Object.assign(signingKey, { kid: "test", use: "sig", alg: "RS256" });
const issuer = `http://127.0.0.1:${env("OIDC_PORT")}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: "herald-console",
    client_secret: "a-client-secret-for-the-test",
    redirect_uris: [`${base}/api/v1/sso/callback`],
    response_types: ["code"],
    grant_types: ["authorization_code"],
    token_endpoint_auth_method: "client_secret_post",
  }],
  jwks: { keys: [signingKey] },
  pkce: { required: () => true },
  claims: { email: ["email", "email_verified"] },
  findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id, email: id, email_verified: true }) }),
});
const providerServer = await new Promise((r) => { const s = provider.listen(Number(env("OIDC_PORT")), "127.0.0.1", () => r(s)); });

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

/** A page that fails the test on a script error or a request Herald's pages make to
 *  anywhere else. Nothing leaves this machine: any other request is aborted (the
 *  OpenID provider's development login page asks for a web font). */
async function open(width) {
  const context = await browser.newContext({ viewport: { width, height: width < 600 ? 844 : 860 } });
  const local = (u) => u.startsWith(origin) || u.startsWith(issuer) || u.startsWith("data:");
  await context.route((url) => !local(url.toString()), (route) => route.abort());
  const page = await context.newPage();
  page.on("pageerror", (e) => { throw new Error("page error: " + e.message); });
  page.on("request", (r) => {
    const fromProvider = r.frame().url().startsWith(issuer);
    if (!local(r.url()) && !fromProvider) throw new Error("a request left the server: " + r.url());
  });
  return page;
}

async function shot(page, name, fullPage = true) {
  const dir = process.env.SCREENSHOTS;
  if (dir) await page.screenshot({ path: `${dir}/${name}.png`, fullPage });
}

/** Every form control has a label a screen reader can read. */
async function assertLabelled(page, where) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea, button")]
      .filter((el) => el.offsetParent !== null)
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !(el.tagName === "BUTTON" && el.textContent.trim()))
      .map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unlabelled, [], `unlabelled controls on ${where}`);
}

// 1. The console: sign in, find a message, open its attempt.
{
  const page = await open(1280);
  await page.goto(base + "/console");
  await assertLabelled(page, "sign-in");
  await page.getByLabel("Admin token").fill("wrong-token-0000000000");
  await page.getByRole("button", { name: "Use token" }).click();
  await page.getByRole("alert").filter({ hasText: "not valid" }).waitFor();
  await page.getByLabel("Admin token").fill(env("HERALD_ADMIN_TOKEN"));
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Applications" }).waitFor();
  await shot(page, "console-apps-desktop");
  // Herald's operational application is apart from the tenants, and marked on its page.
  const tenants = page.getByRole("table", { name: "Applications" });
  await tenants.getByRole("link", { name: "Shop A" }).waitFor();
  assert.equal(await tenants.getByText("Herald operational webhooks").count(), 0, "the operational application is listed as a tenant");
  await page.getByLabel("Operational webhooks").getByRole("link", { name: "Herald operational webhooks" }).click();
  await page.getByRole("note").filter({ hasText: "not a tenant" }).waitFor();
  await page.goto(base + "/console#/");
  await page.getByRole("link", { name: "Shop A" }).click();
  await page.getByRole("table", { name: "Messages" }).waitFor();
  await assertLabelled(page, "application");
  // Search by delivery status: the delivered message is among the succeeded, and
  // nothing failed.
  await page.getByLabel("Delivery status").selectOption("2");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("table", { name: "Messages" }).getByText("Nothing here yet.").waitFor();
  await page.getByLabel("Delivery status").selectOption("0");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("table", { name: "Messages" }).getByRole("link", { name: env("MSG_A") }).waitFor();
  // Each message says how its deliveries went.
  await page.getByRole("table", { name: "Messages" }).getByText("succeeded").first().waitFor();
  await page.getByLabel("Message ID").fill(env("MSG_A"));
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("heading", { name: "Message " + env("MSG_A") }).waitFor();
  const attemptLink = page.getByRole("table", { name: "Attempts" }).getByRole("link").first();
  await attemptLink.waitFor();
  await shot(page, "console-message-desktop");
  // The breadcrumb names the application; the attempts say which endpoint they went to.
  await page.locator("main p").first().getByRole("link", { name: "Shop A" }).waitFor();
  assert.equal(await page.getByRole("table", { name: "Attempts" }).getByRole("columnheader", { name: "Endpoint" }).count(), 1);
  await attemptLink.click();
  await page.getByRole("heading", { name: "Request" }).waitFor();
  await page.getByRole("heading", { name: "Response" }).waitFor();
  assert.match(await page.getByLabel("Response body").textContent(), /delivered to A/);
  assert.match(await page.getByLabel("Request body").textContent(), /"order": 1/);
  // An operator creates an application, an endpoint and a source from the console.
  await page.goto(base + "/console#/");
  await page.getByText("New application").click();
  await page.getByLabel("Name").fill("Shop D");
  await page.getByRole("button", { name: "Create application" }).click();
  await page.getByRole("heading", { name: /^Shop D/ }).waitFor();
  await page.getByText("Add endpoint").click();
  await page.getByLabel("URL").fill(receiverUrl);
  await page.getByRole("button", { name: "Create endpoint" }).click();
  await page.getByRole("heading", { name: receiverUrl }).waitFor();
  // A destination: created from the console, then disabled, enabled and moved.
  await page.locator("main p").first().getByRole("link", { name: "Shop D" }).click();
  await page.getByText("New destination").click();
  await page.getByLabel("Where batches go").fill(receiverUrl);
  await page.getByLabel("Batch size").fill("10");
  await page.getByRole("button", { name: "Create destination" }).click();
  await page.getByRole("heading", { name: /^fifoEndpoint/ }).waitFor();
  const state = page.getByLabel("Lag");
  await state.getByText("enabled").waitFor();
  await page.getByText("Behind (messages)").waitFor();
  await assertLabelled(page, "destination");
  await page.getByRole("button", { name: "Disable" }).click();
  await state.getByText("disabled").waitFor();
  await page.getByRole("button", { name: "Enable" }).click();
  await state.getByText("enabled").waitFor();
  await page.getByLabel("Send again from").fill("2020-01-01T00:00");
  await page.getByRole("button", { name: "Seek" }).click();
  await page.getByText(/^Moved:/).waitFor();
  await page.getByRole("button", { name: "Show secret" }).click();
  await page.locator("#dest-secret", { hasText: "whsec_" }).waitFor();
  await shot(page, "console-destination-desktop");
  await page.locator("main p").first().getByRole("link", { name: "Shop D" }).click();
  await page.getByRole("table", { name: "Destinations" }).getByText(receiverUrl).waitFor();
  // A destination in the consumer's own Redis: its settings appear for its type, the
  // connection is tested before saving (a port where nothing listens, then the real one).
  // Skipped when no Redis answers on 127.0.0.1:6379, unless HERALD_REQUIRE_BROKERS.
  const redisAnswers = await new Promise((resolve) => {
    const socket = require("node:net").connect(6379, "127.0.0.1");
    socket.once("connect", () => { socket.destroy(); resolve(true); });
    socket.once("error", () => resolve(false));
  });
  if (!redisAnswers && process.env.HERALD_REQUIRE_BROKERS) throw new Error("HERALD_REQUIRE_BROKERS is set but Redis does not answer on 127.0.0.1:6379");
  if (!redisAnswers) console.log("Redis does not answer on 127.0.0.1:6379: the console's redisStream form is skipped");
  if (redisAnswers) {
  await page.getByText("New destination").click();
  await page.getByLabel("Destination type").selectOption("redisStream");
  await page.getByLabel("Redis URL").fill("redis://127.0.0.1:1/0");
  await page.getByLabel("Stream key").fill("herald-ui-test");
  await assertLabelled(page, "the destination form");
  await page.getByRole("button", { name: "Test connection" }).click();
  await page.locator("#dest-test-result", { hasText: "Connection failed: " }).waitFor();
  await page.getByLabel("Redis URL").fill("redis://127.0.0.1:6379/0");
  await page.getByRole("button", { name: "Test connection" }).click();
  await page.locator("#dest-test-result", { hasText: "Connection works" }).waitFor();
  await shot(page, "console-destination-form-desktop");
  await page.getByRole("button", { name: "Create destination" }).click();
  await page.getByRole("heading", { name: /^redisStream/ }).waitFor();
  await page.getByText("redis://127.0.0.1:6379/0").waitFor();
  await page.locator("main p").first().getByRole("link", { name: "Shop D" }).click();
  await page.getByRole("table", { name: "Destinations" }).getByText("redis://127.0.0.1:6379/0").waitFor();
  }
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Sources" }).click();
  await page.getByText("New source").click();
  await page.getByLabel("Name").fill("GitHub");
  await page.getByLabel("Scheme").selectOption("github");
  await page.getByLabel("Provider's secret").fill("It's a Secret to Everybody");
  await page.getByLabel("Forward to (URL)").fill(receiverUrl);
  await page.getByRole("button", { name: "Create source" }).click();
  await page.getByText(/\/in\/src_/).waitFor();
  await page.getByRole("table", { name: "Destinations" }).getByText(receiverUrl).waitFor();
  await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: "Sources" }).click();
  await page.getByRole("table", { name: "Sources" }).getByRole("link", { name: "GitHub" }).waitFor();
  // A failed attempt says why it failed, in the list and on its page.
  await page.goto(base + "/console#/app/" + env("APP_C") + "/msg/" + env("MSG_C"));
  await page.getByRole("table", { name: "Attempts" }).getByText(/^connection refused/).waitFor();
  // The event type page validates an example against the schema.
  await page.goto(base + "/console#/event-type/" + env("EVENT_TYPE"));
  await page.getByLabel("Example payload").fill('{"order": "one"}');
  await page.getByRole("button", { name: "Validate" }).click();
  await page.getByText("$.order: should be integer").waitFor();
  await page.getByLabel("Example payload").fill('{"order": 3}');
  await page.getByRole("button", { name: "Validate" }).click();
  await page.getByText("The example matches the schema").waitFor();
  await page.context().close();
}

// The console at phone width.
{
  const page = await open(390);
  await page.goto(base + "/console");
  await page.getByLabel("Admin token").fill(env("HERALD_ADMIN_TOKEN"));
  await page.getByRole("button", { name: "Use token" }).click();
  await page.getByRole("heading", { name: "Applications" }).waitFor();
  await shot(page, "console-apps-phone");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the console scrolls sideways on a phone by ${overflow}px`);
  await page.context().close();
}

// 2. The portal: add an endpoint, send an example, see it fail, replay, see it succeed.
{
  const page = await open(1280);
  await page.goto(env("PORTAL_A"));
  await page.getByRole("heading", { name: "Endpoints" }).waitFor();
  assert.ok(!page.url().includes("token="), "the token stays in the address bar");
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await assertLabelled(page, "new endpoint");
  await page.getByLabel("Endpoint URL").fill(receiverUrl);
  await page.getByLabel("Description").fill("my receiver");
  await page.getByRole("button", { name: "Create endpoint" }).click();
  await page.getByRole("heading", { name: receiverUrl }).waitFor();
  await page.getByLabel("Event type").selectOption(env("EVENT_TYPE"));
  await page.getByRole("button", { name: "Send example" }).click();
  const attempts = page.getByRole("table", { name: "Attempts" });
  await attempts.getByText("200").first().waitFor();
  failing = true;
  await page.getByRole("button", { name: "Send example" }).click();
  await attempts.getByText("500").first().waitFor();
  failing = false;
  const before = received;
  await page.getByRole("button", { name: "Replay failed (7 days)" }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('table')].some((t) => t.caption && t.caption.textContent === "Attempts" && [...t.querySelectorAll("td .badge")].filter((b) => b.textContent === "200").length >= 2), null, { timeout: 15000 });
  assert.ok(received > before, "the replay reached the receiver");
  await page.getByRole("button", { name: "Reveal secret" }).click();
  await page.locator("#secret", { hasText: "whsec_" }).waitFor();
  // The transformation editor: run code on the event type's example, see an error with
  // its line, save it switched on, and the next example arrives transformed.
  await page.getByRole("heading", { name: "Transformation" }).waitFor();
  await assertLabelled(page, "the endpoint page with its transformation editor");
  await page.getByLabel("Try with").selectOption(env("EVENT_TYPE"));
  await page.getByLabel("Transformation code").fill("function handler(w) {\n  throw new Error('not yet');\n}");
  await page.getByRole("button", { name: "Run", exact: true }).click();
  await page.locator("#transform-result", { hasText: "Error thrown (line 2" }).waitFor();
  assert.match(await page.locator("#transform-result").textContent(), /not yet/);
  const code = "function handler(w) {\n  w.payload = { transformed: true, type: w.eventType };\n  w.headers = { 'X-From': 'portal' };\n  return w;\n}";
  await page.getByLabel("Transformation code").fill(code);
  await page.getByRole("button", { name: "Run", exact: true }).click();
  await page.locator("#transform-result", { hasText: '"transformed": true' }).waitFor();
  assert.match(await page.locator("#transform-result").textContent(), /x-from: portal/);
  await page.locator("#transform-enabled").check();
  await page.getByRole("button", { name: "Save transformation" }).click();
  await page.getByText("Transformation saved and on").waitFor();
  const beforeTransformed = received;
  await page.getByRole("button", { name: "Send example" }).click();
  for (let i = 0; i < 150 && received === beforeTransformed; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(JSON.parse(lastBody), { transformed: true, type: env("EVENT_TYPE") }, "the example arrived transformed");
  await shot(page, "portal-endpoint-desktop");
  // The consumer makes a poller and reads its token.
  await page.goto(env("PORTAL_A"));
  await page.getByRole("heading", { name: "Destinations" }).waitFor();
  await page.getByText("New destination").click();
  await page.getByLabel("Destination type").selectOption("pollingEndpoint");
  await page.getByRole("button", { name: "Create destination" }).click();
  await page.getByRole("heading", { name: /^pollingEndpoint/ }).waitFor();
  await page.getByText("caught up").or(page.getByText("Behind (messages)")).first().waitFor();
  await page.getByRole("button", { name: "Show secret" }).click();
  await page.locator("#dest-secret", { hasText: "hrld_" }).waitFor();
  await page.getByRole("link", { name: "Event catalog" }).click();
  await page.getByRole("heading", { name: "Verifying deliveries" }).waitFor();
  await page.getByRole("heading", { name: env("EVENT_TYPE") }).waitFor();
  await page.getByText("The order number").waitFor();
  // The tenant's catalog is its own: none of Herald's operational event types.
  assert.equal(await page.getByRole("heading", { name: "endpoint.created" }).count(), 0, "operational event types in a tenant's catalog");
  assert.match(await page.locator("details pre").first().textContent(), /"order": 1/);
  await page.getByRole("tab", { name: "Rust" }).click();
  assert.match(await page.locator("#snippet").textContent(), /standardwebhooks::Webhook/);
  await shot(page, "portal-catalog-desktop");
  await page.context().close();
}

// The portal at phone width.
{
  const page = await open(390);
  await page.goto(env("PORTAL_A"));
  await page.getByRole("heading", { name: "Endpoints" }).waitFor();
  await page.getByRole("table", { name: "Your endpoints" }).getByRole("link").first().waitFor();
  await shot(page, "portal-endpoints-phone");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the portal scrolls sideways on a phone by ${overflow}px`);
  await page.context().close();
}

// 3. App A's link cannot read app B.
{
  const page = await open(1280);
  const tokenA = new URL(env("PORTAL_A")).hash.replace("#token=", "");
  await page.goto(`${base}/portal/${env("APP_B")}#token=${tokenA}`);
  await page.locator("#status.error").waitFor();
  assert.match(await page.locator("#status").textContent(), /not found/i);
  assert.equal(await page.getByRole("table", { name: "Your endpoints" }).count(), 0);
  const direct = await page.evaluate(async ([app, t]) => (await fetch(`/api/v1/app/${app}/msg`, { headers: { Authorization: "Bearer " + t } })).status, [env("APP_B"), tokenA]);
  assert.equal(direct, 404);
  await page.context().close();
}

// 6. The Team page: an admin adds a person (with TOTP: the secret is shown once) and a
// token (its key shown once), and revokes the token.
{
  const page = await open(1280);
  await page.goto(base + "/console");
  await page.getByLabel("Admin token").fill(env("HERALD_ADMIN_TOKEN"));
  await page.getByRole("button", { name: "Use token" }).click();
  await page.getByRole("heading", { name: "Applications" }).waitFor();
  await page.getByRole("link", { name: "Team" }).click();
  await page.getByRole("table", { name: "People" }).waitFor();
  await page.getByText("Add a person").click();
  await page.getByText("Make an API token").click();
  await assertLabelled(page, "the team page");
  await page.getByLabel("Email").fill("dana@example.com");
  await page.getByLabel("Password (12 characters or more)").fill("dana's long password");
  await page.locator("#person-role").selectOption("support");
  await page.getByLabel("TOTP second factor").check();
  await page.getByRole("button", { name: "Add person" }).click();
  await page.locator("#team-shown", { hasText: "TOTP secret for dana@example.com" }).waitFor();
  await page.getByRole("table", { name: "People" }).getByText("dana@example.com").waitFor();
  await page.getByLabel("Token name").fill("grafana");
  await page.locator("#token-role").selectOption("viewer");
  await page.getByRole("button", { name: "Make token" }).click();
  await page.locator("#team-shown", { hasText: "Key of grafana (shown once): hrld_" }).waitFor();
  const key = (await page.locator("#team-shown").textContent()).split(": ")[1].trim();
  const tokens = page.getByRole("table", { name: "API tokens" });
  await tokens.getByText("grafana").waitFor();
  const usable = await fetch(`${base}/api/v1/app`, { headers: { Authorization: "Bearer " + key } });
  assert.equal(usable.status, 200);
  page.once("dialog", (d) => d.accept());
  await tokens.getByRole("row", { name: /grafana/ }).getByRole("button", { name: "Revoke" }).click();
  await page.getByText("Revoked grafana").waitFor();
  const revoked = await fetch(`${base}/api/v1/app`, { headers: { Authorization: "Bearer " + key } });
  assert.equal(revoked.status, 401);
  await shot(page, "console-team-desktop");
  await page.context().close();
}

// 5. People sign in as themselves: a password, then a password and a TOTP code; a write
// through the console (with its CSRF token); sign out; a session ended on the server
// sends the console back to the sign-in form.
{
  const admin = { Authorization: "Bearer " + env("HERALD_ADMIN_TOKEN"), "Content-Type": "application/json" };
  const addPerson = async (body) => {
    const r = await fetch(`${base}/api/v1/person`, { method: "POST", headers: admin, body: JSON.stringify(body) });
    const text = await r.text();
    assert.equal(r.status, 201, text);
    return JSON.parse(text);
  };
  const ana = await addPerson({ email: "ana@example.com", password: "a long enough password", role: "developer", environments: { staging: "viewer" } });
  const bo = await addPerson({ email: "bo@example.com", password: "another long password", role: "viewer", totp: true });
  // RFC 6238 in a few lines, as an authenticator app would compute it.
  const totp = (secretB32) => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits = "";
    for (const c of secretB32) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
    const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
    const mac = require("node:crypto").createHmac("sha1", key).update(counter).digest();
    const o = mac[19] & 15;
    const n = ((mac[o] & 0x7f) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3];
    return String(n % 1000000).padStart(6, "0");
  };

  const page = await open(1280);
  await page.goto(base + "/console");
  await assertLabelled(page, "the sign-in page");
  await page.getByLabel("Email").fill("ana@example.com");
  await page.getByLabel("Password").fill("not her password");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: "wrong email or password" }).waitFor();
  await page.getByLabel("Password").fill("a long enough password");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Applications" }).waitFor();
  // The cookie is HttpOnly: the page's scripts cannot read it.
  assert.equal(await page.evaluate(() => document.cookie.includes("herald_session")), false);
  // A write through the console goes with the session and its CSRF token.
  await page.getByText("New application").click();
  await page.locator("#new-name").fill("Made by Ana");
  await page.getByRole("button", { name: "Create application" }).click();
  await page.getByRole("link", { name: "Made by Ana" }).first().waitFor({ timeout: 15000 }).catch(async () => {
    await page.goto(base + "/console#/");
    await page.getByRole("link", { name: "Made by Ana" }).first().waitFor();
  });
  const trail = await (await fetch(`${base}/api/v1/audit?actor_id=${ana.id}`, { headers: admin })).json();
  assert.ok(trail.data.some((e) => e.route === "/api/v1/app" && e.status === 201), JSON.stringify(trail));
  // The console's audit page shows it, filtered by who made it.
  await page.getByRole("link", { name: "Audit" }).click();
  await page.getByRole("table", { name: "Audit trail" }).waitFor();
  await assertLabelled(page, "the audit page");
  await page.getByLabel("Who (token or person id)").fill(ana.id);
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByRole("table", { name: "Audit trail" }).getByText("POST /api/v1/app").first().waitFor();
  await page.getByRole("table", { name: "Audit trail" }).getByText("ana@example.com (developer)").first().waitFor();
  await shot(page, "console-audit-desktop");
  // Ana is a viewer in staging: the console switches to it, shows staging's
  // applications only, and refuses her a write there; then back to the default.
  const picker = page.getByLabel("Environment");
  await picker.selectOption("staging");
  await page.getByRole("link", { name: "Staging shop" }).waitFor();
  assert.equal(await page.getByRole("link", { name: "Made by Ana" }).count(), 0);
  await page.getByText("New application").click();
  await page.locator("#new-name").fill("Not allowed here");
  await page.getByRole("button", { name: "Create application" }).click();
  await page.getByText("a viewer may not POST").waitFor();
  await shot(page, "console-environment-desktop");
  await picker.selectOption("default");
  await page.getByRole("link", { name: "Made by Ana" }).first().waitFor();
  assert.equal(await page.getByRole("link", { name: "Staging shop" }).count(), 0);
  // Signing out ends the session on the server.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Email").waitFor();
  await page.goto(base + "/console");
  await page.getByLabel("Email").waitFor();

  // Bo has a second factor.
  await page.getByLabel("Email").fill("bo@example.com");
  await page.getByLabel("Password").fill("another long password");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: "TOTP code is needed" }).waitFor();
  await page.getByLabel("Code from your authenticator app").fill(totp(bo.totpSetup.secret));
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Applications" }).waitFor();
  // Removed by an admin: Bo's session is refused, and the console asks to sign in.
  const gone = await fetch(`${base}/api/v1/person/${bo.id}`, { method: "DELETE", headers: admin });
  assert.equal(gone.status, 204);
  await page.goto(base + "/console#/event-types");
  await page.getByLabel("Email").waitFor({ timeout: 15000 });

  // Single sign-on: the provider vouches for Cy, whom an admin added; someone unknown
  // to Herald is refused.
  await addPerson({ email: "cy@example.com", password: "cy has a password too", role: "support" });
  const sso = async (login) => {
    await page.goto(base + "/console");
    await page.getByRole("link", { name: "Sign in with single sign-on" }).click();
    await page.locator('input[name="login"]').fill(login);
    await page.locator('input[name="password"]').fill("anything");
    await page.locator('button[type="submit"]').click();
    // The provider asks to share the email with Herald.
    await page.locator('button[type="submit"]').click();
  };
  await sso("cy@example.com");
  await page.getByRole("heading", { name: "Applications" }).waitFor({ timeout: 15000 });
  assert.ok(page.url().startsWith(base + "/console"), page.url());
  const who = await page.evaluate(async () => (await fetch("/api/v1/session")).json());
  assert.equal(who.email, "cy@example.com");
  assert.equal(who.role, "support");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Email").waitFor();
  await page.context().clearCookies();
  await sso("stranger@example.com");
  await page.getByText("ask an admin to add you").waitFor({ timeout: 15000 });
  await page.context().close();
}

// 4. The API reference renders from the served document.
{
  const page = await open(1280);
  await page.goto(base + "/docs");
  await page.getByRole("heading", { name: "Message", exact: true }).waitFor();
  await page.getByText("/api/v1/app/{app_id}/msg", { exact: true }).first().waitFor();
  await shot(page, "docs-desktop", false);
  await page.context().close();
}

await browser.close();
receiver.close();
providerServer.close();
console.log("BROWSER OK");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
