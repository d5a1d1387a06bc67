// docs.cjs URL OPENAPI SCREENSHOT: loads URL (backendd's /docs/) in Debian's
// headless Chromium through playwright-core, waits until Swagger UI lists the
// operations, and checks that every operation of OPENAPI (the service's
// /openapi.json, a file) is listed, each once, and nothing else; that the page
// threw no error; then writes a full-page screenshot to SCREENSHOT. Run by
// tests/daemon/browser.sh, with NODE_PATH naming the node_modules that npm ci
// filled from tests/browser/package-lock.json. Exit 0 on success, 1 with the
// reason otherwise. SPDX-License-Identifier: MIT
"use strict";
const fs = require("fs");
const { chromium } = require("playwright-core");

const [url, openapiFile, screenshot] = process.argv.slice(2);
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

(async () => {
  if (!url || !openapiFile || !screenshot) fail("usage: docs.cjs URL OPENAPI SCREENSHOT");
  const doc = JSON.parse(fs.readFileSync(openapiFile, "utf8"));
  const want = [];
  for (const [path, item] of Object.entries(doc.paths || {}))
    for (const m of METHODS) if (item[m]) want.push(`${m.toUpperCase()} ${path}`);
  want.sort();
  if (want.length === 0) fail(`${openapiFile} has no operations`);

  // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    const res = await page.goto(url, { waitUntil: "load" });
    if (!res || res.status() !== 200) fail(`GET ${url}: ${res ? res.status() : "no answer"}`);
    // Swagger UI fetches the document and then draws every operation at once.
    await page.waitForFunction((n) => document.querySelectorAll(".opblock").length >= n, want.length, {
      timeout: 30000,
    }).catch(() => {});
    const got = await page.$$eval(".opblock", (blocks) =>
      blocks.map((b) => {
        const method = b.querySelector(".opblock-summary-method");
        const path = b.querySelector(".opblock-summary-path");
        const p = path && (path.getAttribute("data-path") || path.textContent);
        return `${method ? method.textContent.trim() : "?"} ${(p || "?").replace(/\u200b/g, "").trim()}`;
      })
    );
    got.sort();
    await page.screenshot({ path: screenshot, fullPage: true });
    const missing = want.filter((op) => !got.includes(op));
    const extra = got.filter((op) => !want.includes(op));
    const twice = got.filter((op, i) => got.indexOf(op) !== i);
    if (missing.length) fail(`not listed by /docs: ${missing.join(", ")} (listed: ${got.length})`);
    if (extra.length || twice.length) fail(`listed by /docs but not once in the document: ${[...extra, ...twice].join(", ")}`);
    if (errors.length) fail(`the page reported errors: ${errors.join(" | ")}`);
    const title = await page.$eval(".info .title", (t) => t.textContent).catch(() => "");
    if (!title.startsWith(doc.info.title)) fail(`the page's title is "${title}", not the document's "${doc.info.title}"`);
    console.log(`docs: ${got.length} operations listed, as in the document; screenshot ${screenshot}`);
  } finally {
    await browser.close();
  }
})().catch((e) => fail(e.stack || String(e)));
