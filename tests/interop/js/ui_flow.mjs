// The btt node web UI in headless Chromium: add a .torrent through the page's file input with an
// extra peer, wait for its row to reach 100 %, open its detail panel and see a peer, and take
// screenshots at desktop (1280x800) and phone (390x844) sizes.
//
// Usage:
//   node ui_flow.mjs --url http://127.0.0.1:9091/ --torrent FILE --peer 127.0.0.1:6881 --screenshots DIR
// Each flag has an environment twin: UI_URL, UI_TORRENT, UI_PEER, UI_SCREENSHOTS (and CHROMIUM,
// UI_TIMEOUT_MS). Prints one JSON line on success; exits non-zero with a message naming the step
// that failed (a screenshot of that moment is saved as failure.png). Every wait polls the DOM with
// a deadline; none is a fixed sleep.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: process.env.UI_URL },
    torrent: { type: "string", default: process.env.UI_TORRENT },
    peer: { type: "string", default: process.env.UI_PEER ?? "" },
    screenshots: { type: "string", default: process.env.UI_SCREENSHOTS },
    chromium: { type: "string", default: process.env.CHROMIUM ?? "/usr/bin/chromium" },
    "timeout-ms": { type: "string", default: process.env.UI_TIMEOUT_MS ?? "60000" },
  },
});

function usage(message) {
  console.error(`ui_flow: ${message}`);
  console.error("usage: node ui_flow.mjs --url URL --torrent FILE [--peer IP:PORT] --screenshots DIR");
  process.exit(2);
}

if (!args.url) usage("--url (or UI_URL) is required");
if (!args.torrent) usage("--torrent (or UI_TORRENT) is required");
if (!args.screenshots) usage("--screenshots (or UI_SCREENSHOTS) is required");
const TIMEOUT_MS = Number(args["timeout-ms"]);

// The v1 info-hash of the .torrent, computed here so the test finds its row by hash and not by name.
function infoHashHex(path) {
  const data = readFileSync(path);
  let i = 0;
  const skip = () => {
    const c = data[i];
    if (c === 0x69) {
      i = data.indexOf(0x65, i) + 1; // i…e
    } else if (c === 0x6c || c === 0x64) {
      i++;
      while (data[i] !== 0x65) skip();
      i++;
    } else if (c >= 0x30 && c <= 0x39) {
      const colon = data.indexOf(0x3a, i);
      i = colon + 1 + Number(data.subarray(i, colon).toString());
    } else {
      throw new Error(`${path} is not bencoded (byte ${c} at ${i})`);
    }
  };
  if (data[0] !== 0x64) throw new Error(`${path} is not a bencoded dictionary`);
  i = 1;
  while (data[i] !== 0x65) {
    const colon = data.indexOf(0x3a, i);
    const len = Number(data.subarray(i, colon).toString());
    const key = data.subarray(colon + 1, colon + 1 + len).toString();
    i = colon + 1 + len;
    const start = i;
    skip();
    if (key === "info") {
      return createHash("sha1").update(data.subarray(start, i)).digest("hex");
    }
  }
  throw new Error(`${path} has no info dictionary`);
}

let step = "starting";
let page = null;
let browser = null;
const consoleErrors = [];

// A whole-page screenshot from the top, so the sticky header sits where a reader expects it.
async function fullPageShot(name) {
  const y = await page.evaluate(() => window.scrollY);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(args.screenshots, name), fullPage: true });
  await page.evaluate((top) => window.scrollTo(0, top), y);
}

async function main() {
  mkdirSync(args.screenshots, { recursive: true });
  const hash = infoHashHex(args.torrent);

  step = `launching ${args.chromium}`;
  // playwright gives the browser a fresh profile in a temporary directory of its own.
  browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    timeout: TIMEOUT_MS,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(TIMEOUT_MS);
  page = await context.newPage();
  const noteError = (text) => {
    if (!consoleErrors.includes(text)) consoleErrors.push(text);
  };
  page.on("console", (msg) => {
    // Chromium logs every non-2xx answer as "Failed to load resource"; the session handshake's
    // 409 is one of those by design, and API errors the page shows are checked separately.
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) noteError(msg.text());
  });
  page.on("pageerror", (err) => noteError(String(err)));
  // The page must not need anything but this node: count requests to other origins.
  const origin = new URL(args.url).origin;
  const foreign = [];
  page.on("request", (req) => {
    const u = req.url();
    if (!u.startsWith(origin) && !u.startsWith("data:")) foreign.push(u);
  });

  step = `opening ${args.url}`;
  await page.goto(args.url, { waitUntil: "load" });
  await page.getByTestId("add-form").waitFor({ state: "visible" });
  // The version comes from GET /api/v1/session: the page reached the API.
  await page.waitForFunction(() => document.getElementById("version").textContent.length > 0);

  step = "adding the torrent through the file input";
  await page.getByTestId("add-file").setInputFiles(args.torrent);
  if (args.peer) await page.getByTestId("add-peers").fill(args.peer);
  await page.getByTestId("add-submit").click();

  step = `waiting for the row of ${hash}`;
  const row = page.locator(`[data-testid="torrent-row"][data-hash="${hash}"]`);
  await row.waitFor({ state: "visible" });
  const errors = await page.getByTestId("error").allTextContents();
  if (errors.length) throw new Error(`the page shows an error after adding: ${errors.join(" | ")}`);

  step = "waiting for the row to show 100%";
  try {
    await page.waitForFunction(
      (h) => {
        const r = document.querySelector(`[data-testid="torrent-row"][data-hash="${h}"]`);
        return r && r.querySelector(".progress").textContent.trim() === "100%";
      },
      hash,
      { timeout: TIMEOUT_MS, polling: 250 },
    );
  } catch (e) {
    const progress = await row.locator(".progress").textContent().catch(() => "?");
    const state = await row.getAttribute("data-state").catch(() => "?");
    throw new Error(`the row stayed at ${progress} (state ${state}): ${e.message.split("\n")[0]}`);
  }
  const name = (await row.locator(".name-text").textContent()).trim();
  step = "waiting for the seeding state";
  await page.waitForFunction((h) => document.querySelector(`[data-testid="torrent-row"][data-hash="${h}"]`)?.dataset.state === "seeding", hash);
  await page.screenshot({ path: join(args.screenshots, "desktop-list.png") });

  step = "opening the detail panel";
  await row.locator(".name-text").click();
  const detail = page.getByTestId("detail");
  await detail.waitFor({ state: "visible" });
  await page.waitForFunction((n) => document.getElementById("detail-name").textContent === n, name);
  await page.locator('[data-testid="file-row"]').first().waitFor({ state: "visible" });
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="file-row"] .progress')].every((p) => p.textContent === "100%"));

  step = "looking for a peer in the peers tab";
  await page.getByTestId("peers-tab").click();
  await page.locator('[data-testid="peer-row"]').first().waitFor({ state: "visible" });
  const peerAddrs = await page.locator('[data-testid="peer-row"]').evaluateAll((rows) => rows.map((r) => r.dataset.addr));
  await fullPageShot("desktop-peers.png");

  step = "drawing the piece map";
  await page.getByTestId("pieces-tab").click();
  await page.waitForFunction(() => {
    const c = document.querySelector('[data-testid="piece-map"]');
    return c && c.dataset.total !== undefined && c.dataset.total !== "0" && c.dataset.have === c.dataset.total;
  });
  const pieces = await page.getByTestId("piece-map").evaluate((c) => ({ have: Number(c.dataset.have), total: Number(c.dataset.total) }));
  await fullPageShot("desktop-pieces.png");

  step = "checking the live rate graph";
  // The graph gains a sample per `torrents` event (or per poll): two means updates are flowing.
  await page.waitForFunction(() => Number(document.getElementById("rate-graph").dataset.samples || 0) >= 2);
  const conn = await page.getByTestId("connection").getAttribute("data-state");

  step = "resizing to a phone (390x844)";
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.scrollTo(0, 0));
  // At < 640 px the table turns into cards: the header row is gone and each row is a grid.
  await page.waitForFunction(() => {
    const head = document.querySelector('[data-testid="torrent-table"] thead');
    return head && getComputedStyle(head).display === "none";
  });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) throw new Error(`the phone layout scrolls sideways by ${overflow}px`);
  await page.screenshot({ path: join(args.screenshots, "phone.png") });
  await row.scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(args.screenshots, "phone-row.png") });
  await fullPageShot("phone-full.png");
  await page.getByTestId("peers-tab").click();
  await page.locator('[data-testid="peer-row"]').first().waitFor({ state: "visible" });
  await detail.screenshot({ path: join(args.screenshots, "phone-detail.png") });

  step = "checking the page";
  if (foreign.length) throw new Error(`the page requested other origins (it must work offline): ${foreign.join(", ")}`);
  const shownErrors = await page.getByTestId("error").allTextContents();
  if (shownErrors.length) throw new Error(`the page shows errors: ${shownErrors.join(" | ")}`);
  if (consoleErrors.length) throw new Error(`the page logged errors: ${consoleErrors.join(" | ")}`);

  console.log(JSON.stringify({
    ok: true,
    hash,
    name,
    peers: peerAddrs,
    pieces,
    updates: conn,
    screenshots: args.screenshots,
  }));
}

try {
  await main();
} catch (e) {
  if (page) {
    await page.screenshot({ path: join(args.screenshots, "failure.png"), fullPage: true }).catch(() => {});
  }
  console.error(`ui_flow: failed while ${step}: ${e.message}`);
  if (consoleErrors.length) console.error(`ui_flow: page console errors: ${consoleErrors.join(" | ")}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
}
