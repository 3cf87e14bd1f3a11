// Keeps the operator console open and updating during a benchmark (scripts/bench.sh
// with HERALD_BENCH_CONSOLE=1): headless Chromium signs in, opens the first application
// once hookbench has made one, and stays there; the page refreshes itself every 3 s.
// It prints "ready" once signed in, so that its start-up is not part of the measurement.
// Usage: NODE_PATH=target/js-sdk/node_modules node scripts/console-watch.cjs URL TOKEN
"use strict";
const { chromium } = require("playwright-core");

(async () => {
  const [url, token] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const page = await browser.newPage();
  await page.goto(url + "/console");
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Applications" }).waitFor();
  // Signed in and refreshing: the benchmark may start.
  console.log("ready");
  const firstApp = page.getByRole("table", { name: "Applications" }).getByRole("link").first();
  await firstApp.waitFor({ timeout: 600000 });
  await firstApp.click();
  await page.getByRole("table", { name: "Messages" }).waitFor();
  console.error("console-watch: watching " + page.url());
  process.on("SIGTERM", async () => { await browser.close(); process.exit(0); });
})().catch((e) => { console.error("console-watch failed:", e.message); process.exit(1); });
