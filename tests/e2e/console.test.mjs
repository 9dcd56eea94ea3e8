// End-to-end tests of the web console in a real headless browser (Debian's
// Chromium, driven by playwright-core). The set-up is Maya's: the CLI
// creates tenants, users, a task and tokens in a state directory; then the
// real `warden serve` runs on it, in front of the mock LLM. Users call the
// API over HTTP as any client would; admins and users use the console.
//
// Run from the repository: `npm test --prefix tests/e2e` after building
// (scripts/test.sh does both). Screenshots land in tests/e2e/artifacts/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, copyFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const targetDir = process.env.CARGO_TARGET_DIR || join(repo, "target");
const warden = process.env.WARDEN_BIN || join(targetDir, "release", "warden");
const artifacts = join(here, "artifacts");
const UPSTREAM_KEY = "e2e-upstream-key";
const TASK = "invoice-backend";

const ON_TASK = "Add a tax field to the invoice REST api";
const OFF_TASK = [
  "Give me a recipe for dinner tonight with pasta",
  "Write a poem for my girlfriend's birthday",
  "Write a cover letter for a marketing job at another company",
  "Plan my holiday in Lisbon with a list of restaurants",
];

let work, state, base, children = [], browser;
const tokens = {};
let mayaLink;

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
    server.on("error", fail);
  });
}

/// The CLI on the (not yet served) state directory.
function cli(...args) {
  return execFileSync(warden, [...args, "--state-dir", state], { encoding: "utf8" }).trim();
}

async function waitFor(url) {
  for (let i = 0; i < 400; i++) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${url} never answered`);
}

function start(args, env = {}) {
  const child = spawn(warden, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  child.stderr.on("data", (d) => { if (/WARN|ERROR|panicked/.test(d)) process.stderr.write(d); });
  children.push(child);
  return child;
}

/// A chat completion as Ali's (or anyone's) client sends it.
async function chat(token, content) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "x-task-id": TASK, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content }] }),
  });
  return { status: r.status, intent: r.headers.get("x-warden-intent"), body: await r.json() };
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  // The console's own confirmations are accepted; anything else (an
  // injected script's alert) is recorded, and tests assert there is none.
  page.alerts = [];
  page.on("dialog", async (d) => {
    if (d.type() === "confirm") return d.accept();
    page.alerts.push(d.message());
    await d.dismiss();
  });
  return page;
}

async function signInWithToken(page, token) {
  await page.goto(`${base}/ui/login`);
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  work = mkdtempSync(join(tmpdir(), "warden-e2e-"));
  state = join(work, "state");
  const port = await freePort();
  const mockPort = await freePort();
  base = `http://127.0.0.1:${port}`;

  cli("tenant", "create", "acme", "--name", "Acme Corp");
  cli("tenant", "create", "globex", "--name", "Globex");
  cli("user", "create", "--tenant", "acme", "maya", "--name", "Maya (owner)", "--role", "admin");
  cli("user", "create", "--tenant", "acme", "ali", "--name", "Ali (freelancer)",
      "--requests-per-day", "200", "--tokens-per-day", "300000");
  cli("user", "create", "--tenant", "acme", "bo", "--name", "Bo (designer)", "--requests-per-day", "100");
  cli("user", "create", "--tenant", "globex", "gina", "--role", "admin");
  cli("task", "create", "--tenant", "acme", TASK, "--title", "Invoice backend",
      "--description", "Build the REST API and database layer that creates, stores and sends invoices.",
      "--keyword", "invoice", "--keyword", "billing", "--keyword", "api", "--keyword", "tax", "--keyword", "pdf");
  cli("user", "create", "--tenant", "acme", "cy", "--name", "Cy (events)");
  cli("task", "create", "--tenant", "globex", TASK, "--title", "Invoice backend",
      "--description", "Build the REST API and database layer that creates, stores and sends invoices.",
      "--keyword", "invoice", "--keyword", "billing", "--keyword", "api", "--keyword", "tax", "--keyword", "pdf");
  cli("user", "create", "--tenant", "globex", "gus");
  tokens.ali = cli("token", "issue", "--tenant", "acme", "--user", "ali", "--task", TASK);
  tokens.cy = cli("token", "issue", "--tenant", "acme", "--user", "cy", "--task", TASK);
  cli("user", "create", "--tenant", "acme", "dee", "--name", "Dee (events too)");
  tokens.dee = cli("token", "issue", "--tenant", "acme", "--user", "dee", "--task", TASK);
  tokens.gus = cli("token", "issue", "--tenant", "globex", "--user", "gus", "--task", TASK);
  tokens.bo = cli("token", "issue", "--tenant", "acme", "--user", "bo", "--task", TASK);
  tokens.maya = cli("token", "issue", "--tenant", "acme", "--user", "maya");
  tokens.gina = cli("token", "issue", "--tenant", "globex", "--user", "gina");
  mayaLink = cli("login-link", "maya", "--tenant", "acme", "--base-url", base).split("\n")[0];
  assert.match(mayaLink, /\/ui\/link\?code=/);

  // A private copy of the built plugins: uploads land in the plugin directory.
  const plugins = join(work, "plugins");
  mkdirSync(plugins);
  for (const file of readdirSync(join(repo, "build", "plugins")).filter((f) => f.endsWith(".wasm"))) {
    copyFileSync(join(repo, "build", "plugins", file), join(plugins, file));
  }
  const config = join(work, "warden.toml");
  writeFileSync(config, [
    `listen = "127.0.0.1:${port}"`,
    `state_dir = "${state}"`,
    `plugin_dir = "${plugins}"`,
    `policy_dir = "${join(repo, "policies")}"`,
    "[upstream]",
    `base_url = "http://127.0.0.1:${mockPort}/v1"`,
    'api_key_env = "WARDEN_E2E_UPSTREAM_KEY"',
    "",
  ].join("\n"));
  start(["mock-llm", "--listen", `127.0.0.1:${mockPort}`, "--require-key", UPSTREAM_KEY]);
  start(["serve", "--config", config], { WARDEN_E2E_UPSTREAM_KEY: UPSTREAM_KEY, RUST_LOG: "warn" });
  await waitFor(`${base}/healthz`);

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  for (const child of children) child.kill("SIGTERM");
  if (work) rmSync(work, { recursive: true, force: true });
});

test("an admin signs in with a one-time link, reviews a blocked user's evidence, re-enables them with a reason, and their next call succeeds", async () => {
  // Some honest work by two users, then Ali drifts until Warden blocks him.
  for (let i = 0; i < 3; i++) assert.equal((await chat(tokens.bo, ON_TASK)).status, 200);
  assert.equal((await chat(tokens.ali, ON_TASK)).status, 200);
  let blocked = null;
  for (const prompt of OFF_TASK) {
    const r = await chat(tokens.ali, prompt);
    if (r.status === 403) { blocked = r; break; }
  }
  assert.ok(blocked, "Ali was never blocked");
  assert.equal(blocked.body.error.code, "user_blocked");
  assert.equal((await chat(tokens.ali, ON_TASK)).status, 403, "blocked stays blocked");

  const page = await newPage();
  await page.goto(mayaLink);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.equal(new URL(page.url()).pathname, "/ui/t/acme");
  assert.match(await page.textContent("#standing-counts"), /1 blocked/);
  await shot(page, "overview");

  // The link works once.
  const again = await (await browser.newContext()).newPage();
  const reused = await again.goto(mayaLink);
  assert.equal(reused.status(), 410);
  await again.context().close();

  await page.click("nav >> text=Review");
  const card = page.locator("#review-ali");
  await card.waitFor();
  const evidence = await card.textContent();
  assert.match(evidence, /blocked/);
  assert.match(evidence, /recipe for dinner/, "the off-task prompts are the evidence");
  assert.match(evidence, /off_topic/);
  assert.match(evidence, /requests in the last hour/);
  await shot(page, "review");

  await card.locator("form.enable input[name=reason]").fill("Talked to Ali: personal prompts stop today");
  await Promise.all([page.waitForNavigation(), card.locator("form.enable button").click()]);
  assert.match(await page.textContent(".flash"), /re-enabled/);
  assert.equal(await page.locator("#review-ali").count(), 0, "Ali left the queue");

  // The decision and its reason are in the audit log, on Ali's page.
  await page.goto(`${base}/ui/t/acme/users/ali`);
  const events = await page.textContent("body");
  assert.match(events, /user\.enable/);
  assert.match(events, /Talked to Ali: personal prompts stop today/);
  await shot(page, "user-detail");

  assert.equal((await chat(tokens.ali, ON_TASK)).status, 200, "Ali works again");
  await page.context().close();
});

test("a user signs in and sees their remaining quota go down after a call", async () => {
  const page = await newPage();
  await signInWithToken(page, tokens.bo);
  assert.equal(new URL(page.url()).pathname, "/ui/me");
  const before = Number((await page.textContent("#remaining-requests")).replace(/,/g, ""));
  assert.equal((await chat(tokens.bo, ON_TASK)).status, 200);
  await page.reload();
  const after = Number((await page.textContent("#remaining-requests")).replace(/,/g, ""));
  assert.equal(after, before - 1);
  assert.match(await page.textContent("#snippet"), /X-Task-Id": "invoice-backend"/);
  await shot(page, "me");
  // A user has no admin pages.
  const admin = await page.goto(`${base}/ui/t/acme/users`);
  assert.equal(admin.status(), 404);
  await page.context().close();
});

test("a prompt containing <script> is shown as text and never runs", async () => {
  const hostile = '<script>window.__pwned = 1; alert("xss")</script><img src=x onerror="window.__pwned = 2"> invoice api';
  assert.equal((await chat(tokens.bo, hostile)).status, 200);
  const page = await newPage();
  await signInWithToken(page, tokens.maya);
  await page.goto(`${base}/ui/t/acme/logs?user=bo`);
  const cell = page.locator("td.prompt", { hasText: "window.__pwned" }).first();
  assert.match(await cell.textContent(), /<script>window\.__pwned = 1/);
  assert.equal(await page.locator("td.prompt script, td.prompt img").count(), 0);
  await shot(page, "logs");
  await Promise.all([page.waitForNavigation(), page.locator("tr", { has: cell }).locator("td a").first().click()]);
  assert.match(await page.textContent("#full-prompt"), /onerror="window.__pwned = 2"/);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.deepEqual(page.alerts, [], "no injected script ran");
  await page.context().close();
});

test("a tenant admin cannot open or change another tenant's pages", async () => {
  const page = await newPage();
  await signInWithToken(page, tokens.gina);
  assert.equal(new URL(page.url()).pathname, "/ui/t/globex");
  for (const path of ["/ui/t/acme", "/ui/t/acme/users/ali", "/ui/t/acme/logs", "/ui/t/acme/review"]) {
    const r = await page.goto(base + path);
    assert.equal(r.status(), 404, path);
    assert.doesNotMatch(await page.textContent("body"), /Ali|invoice/i, path);
  }
  // Even with her own valid CSRF token, a change to acme is refused.
  await page.goto(`${base}/ui/t/globex/users`);
  const csrf = await page.getAttribute("input[name=csrf]", "value");
  const r = await page.request.post(`${base}/ui/t/acme/users/ali/block`, {
    form: { csrf, reason: "not my tenant" }, headers: { origin: base },
  });
  assert.equal(r.status(), 404);
  await page.context().close();
});

test("a form post without the CSRF token is refused and changes nothing", async () => {
  const page = await newPage();
  await signInWithToken(page, tokens.maya);
  const post = (form) => page.request.post(`${base}/ui/t/acme/users/bo/block`, { form, headers: { origin: base } });
  assert.equal((await post({ reason: "no token" })).status(), 403);
  assert.equal((await post({ reason: "wrong token", csrf: "x".repeat(43) })).status(), 403);
  // The same form from another site, with the right token, is refused too.
  await page.goto(`${base}/ui/t/acme/users`);
  const csrf = await page.getAttribute("input[name=csrf]", "value");
  const foreign = await page.request.post(`${base}/ui/t/acme/users/bo/block`, {
    form: { csrf, reason: "cross-site" }, headers: { origin: "http://evil.example" },
  });
  assert.equal(foreign.status(), 403);
  assert.equal((await chat(tokens.bo, ON_TASK)).status, 200, "Bo was not blocked");
  const row = page.locator("#users tr", { hasText: "bo" });
  assert.match(await row.textContent(), /active/);
  await page.context().close();
});

test("the main pages render (screenshots) and an issued token is shown once and works", async () => {
  const page = await newPage();
  await signInWithToken(page, tokens.maya);
  for (const [path, name] of [["users", "users"], ["tasks", "tasks"], ["plugins", "plugins"]]) {
    const r = await page.goto(`${base}/ui/t/acme/${path}`);
    assert.equal(r.status(), 200, path);
    await shot(page, name);
  }
  await page.goto(`${base}/ui/t/acme/tokens`);
  await page.selectOption("#token-user", "bo");
  await page.check(`input[name=tasks][value=${TASK}]`);
  await Promise.all([page.waitForNavigation(), page.click("form.stack button[type=submit]")]);
  const issued = (await page.inputValue("#issued-token")).trim();
  await shot(page, "token-issued");
  assert.equal((await chat(issued, ON_TASK)).status, 200, "the new token works");
  await page.goto(`${base}/ui/t/acme/tokens`);
  assert.doesNotMatch(await page.content(), new RegExp(issued.slice(-20)), "never shown again");
  await shot(page, "tokens");
  // The CSV export has the calls, one per line, with the header.
  const csv = await page.request.get(`${base}/ui/t/acme/logs.csv?user=bo`);
  assert.equal(csv.status(), 200);
  const text = await csv.text();
  assert.match(text.split("\n")[0], /^time,request_id,user,task/);
  assert.ok(text.split("\n").filter((l) => l.includes(",bo,")).length >= 5);
  await page.context().close();
});

test("an admin uploads a plugin (a broken one is refused) and rolls it back", async () => {
  const page = await newPage();
  await signInWithToken(page, tokens.maya);
  const upload = async (file) => {
    await page.goto(`${base}/ui/t/acme/plugins`);
    await page.fill("#plugin-name", "pii-redactor");
    await page.setInputFiles("#plugin-file", file);
    const [response] = await Promise.all([page.waitForNavigation(), page.click("form[enctype] button")]);
    return response;
  };
  // Not a component: refused with the reason, nothing goes live.
  const refused = await upload({ name: "broken.wasm", mimeType: "application/wasm", buffer: Buffer.from("not a component") });
  assert.equal(refused.status(), 400);
  assert.match(await page.textContent(".flash"), /component|wasm/i);

  const component = join(repo, "build", "plugins", "pii-redactor.wasm");
  for (let version = 1; version <= 2; version++) {
    await upload(component);
    assert.match(await page.textContent(".flash"), /self-test and is live/);
    assert.match(await page.textContent("body"), new RegExp(`v${version}`));
  }
  await shot(page, "plugins-uploaded");
  await page.fill("form[data-confirm] input[name=reason]", "v2 is for next week");
  await Promise.all([page.waitForNavigation(), page.click("form[data-confirm] button")]);
  assert.match(await page.textContent(".flash"), /rolled back/);
  const live = await page.locator("tr", { hasText: "live" }).last().textContent();
  assert.match(live, /v1/);
  await page.context().close();
});

test("an admin adds an uploaded guardrail to the policy in the console; it is in force on the next call, a broken policy is refused, and the server's policy comes back", async () => {
  const page = await newPage();
  await signInWithToken(page, tokens.maya);
  const long = "Add a tax field to the invoice REST api. ".repeat(60); // ~2,400 characters
  assert.equal((await chat(tokens.bo, long)).status, 200);

  // Upload: loaded, not in use, and the page offers to add it.
  await page.goto(`${base}/ui/t/acme/plugins`);
  await page.fill("#plugin-name", "short-prompts");
  await page.setInputFiles("#plugin-file", join(repo, "build", "plugins", "max-prompt-length.wasm"));
  await Promise.all([page.waitForNavigation(), page.click("form[enctype] button")]);
  assert.match(await page.textContent("body"), /not in use/);
  await Promise.all([page.waitForNavigation(), page.click("form:has(input[name=plugin][value=short-prompts]) button")]);
  assert.equal(new URL(page.url()).pathname, "/ui/t/acme/policy");
  assert.match(await page.textContent(".flash"), /Policy saved/);
  assert.match(await page.locator("table").first().textContent(), /short-prompts/);
  await shot(page, "policy");

  // In force on the next call, with no file written on the server.
  const refused = await chat(tokens.bo, long);
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, "guardrail_denied");

  // A policy file that does not parse is refused with the reason; the running one stays.
  await page.fill("#policy-toml", "[stages.auth");
  const [broken] = await Promise.all([page.waitForNavigation(), page.click("#policy-toml ~ button")]);
  assert.equal(broken.status(), 400);
  assert.match(await page.textContent(".flash"), /policy/i);
  assert.equal((await chat(tokens.bo, long)).status, 403);

  // Back to the server's policy: the guardrail is gone from the chain.
  await page.goto(`${base}/ui/t/acme/policy`);
  assert.match(await page.textContent("body"), /set here \(version 1\)/);
  await page.fill("form[action$='policy/reset'] input[name=reason]", "done testing");
  await Promise.all([page.waitForNavigation(), page.click("form[action$='policy/reset'] button")]);
  assert.match(await page.textContent("body"), /the server's file for this tenant|the server's default/);
  assert.equal((await chat(tokens.bo, long)).status, 200);
  await page.context().close();
});

test("an admin invites by e-mail; the link in the outbox makes the account and signs her in; she issues her own token and calls the API; the used link is refused", async () => {
  const maya = await newPage();
  await signInWithToken(maya, tokens.maya);
  await maya.goto(`${base}/ui/t/acme/users`);
  await maya.fill("#invite-email", "erin@example.com");
  await maya.fill("#invite-name", "Erin");
  await maya.selectOption("#invite-role", "admin");
  await Promise.all([maya.waitForNavigation(), maya.click("#invitations form button[type=submit]")]);
  assert.match(await maya.textContent(".flash"), /Invitation sent/);
  assert.match(await maya.textContent("#invitations"), /erin@example\.com/);
  await maya.context().close();

  // The invitation e-mail in the outbox, with its one-time link.
  const outbox = join(state, "outbox");
  const files = readdirSync(outbox).filter((f) => f.endsWith(".eml")).sort();
  const mail = readFileSync(join(outbox, files.at(-1)), "utf8");
  assert.match(mail, /To: erin@example\.com/);
  const link = mail.match(/http:\/\/\S+\/ui\/invite\/[0-9a-f]{64}/)[0];

  // Erin, in a browser of her own, accepts and is signed in as an admin.
  const erin = await newPage();
  await erin.goto(link);
  assert.match(await erin.textContent("h1"), /Join Acme Corp/);
  await shot(erin, "invitation");
  await erin.fill("#invite-user", "erin");
  await Promise.all([erin.waitForNavigation(), erin.click("button[type=submit]")]);
  assert.equal(new URL(erin.url()).pathname, "/ui/t/acme");
  // Her role lets her issue her own token, which calls the API.
  await erin.goto(`${base}/ui/t/acme/tokens`);
  await erin.selectOption("#token-user", "erin");
  await erin.check(`input[name=tasks][value=${TASK}]`);
  await Promise.all([erin.waitForNavigation(), erin.click("form.stack button[type=submit]")]);
  const issued = (await erin.inputValue("#issued-token")).trim();
  assert.equal((await chat(issued, ON_TASK)).status, 200);
  await erin.context().close();

  // The link again: a clear page saying it was used.
  const again = await newPage();
  const response = await again.goto(link);
  assert.equal(response.status(), 410);
  assert.match(await again.textContent("body"), /already accepted/);
  await again.context().close();
});

test("an admin marks a flagged prompt on-task in the review queue, and a similar prompt is no longer flagged, for that tenant only", async () => {
  const party = "Plan the company summer party menu with a vegetarian lasagna";
  const partyAgain = "Plan the company summer party menu with a vegetarian curry";
  // Cy's events work looks off-task to Warden; with a little more drift
  // he is flagged, or blocked straight from a warning when the drift comes
  // as a burst (a third unrelated prompt within ten minutes may skip the
  // flag). Either way he is in the review queue.
  assert.equal((await chat(tokens.cy, party)).intent, "off_topic");
  const standing = async () => (await (await fetch(`${base}/v1/me`, { headers: { authorization: `Bearer ${tokens.cy}` } })).json()).status;
  const inReview = async () => ["flagged", "blocked"].includes(await standing());
  for (const prompt of OFF_TASK) {
    if (await inReview()) break;
    const { status } = await chat(tokens.cy, prompt);
    // The blocking call itself is refused; every earlier one goes through.
    assert.ok(status === 200 || (status === 403 && await standing() === "blocked"), `${status}`);
  }
  assert.ok(await inReview(), await standing());

  const page = await newPage();
  await signInWithToken(page, tokens.maya);
  await page.goto(`${base}/ui/t/acme/review`);
  const card = page.locator("#review-cy");
  await card.waitFor();
  assert.match(await card.textContent(), /summer party menu/);
  const item = card.locator("li", { hasText: "summer party menu" });
  await item.locator("input[name=note]").fill("events are part of Cy's job");
  await Promise.all([page.waitForNavigation(), item.locator("button", { hasText: "This was on-task" }).click()]);
  assert.match(await page.textContent(".flash"), /Marked on-task/);
  await shot(page, "review-on-task");

  // The task now lists the prompt as an example (the console's task page).
  await page.goto(`${base}/ui/t/acme/tasks/${TASK}`);
  assert.match(await page.inputValue("#edit-examples"), /summer party menu with a vegetarian lasagna/);

  // A similar prompt is on-task for acme from the next call on, for any of
  // its users (the example belongs to the tenant's task)...
  const after = await chat(tokens.dee, partyAgain);
  assert.equal(after.status, 200);
  assert.notEqual(after.intent, "off_topic", "acme learnt from its admin");
  // ...and still off-task for globex, whose admin taught nothing.
  assert.equal((await chat(tokens.gus, partyAgain)).intent, "off_topic");

  // Cy's own page shows the admin's note.
  const cyPage = await newPage();
  await signInWithToken(cyPage, tokens.cy);
  await cyPage.goto(`${base}/ui/me`);
  assert.match(await cyPage.textContent("#admin-note"), /events are part of Cy's job/);
  assert.deepEqual(page.alerts, []);
});

test("an admin edits a task's examples and turns on shadow mode in the console", async () => {
  const page = await newPage();
  await signInWithToken(page, tokens.maya);
  await page.goto(`${base}/ui/t/acme/tasks/${TASK}`);
  await page.fill("#edit-keywords", "invoice, billing, api, tax, pdf, reminders");
  await Promise.all([page.waitForNavigation(), page.click("#edit-task button[type=submit]")]);
  assert.match(await page.textContent(".flash"), /Task saved/);
  assert.match(await page.inputValue("#edit-keywords"), /reminders/);

  await page.goto(`${base}/ui/t/acme/review`);
  await page.click("#misuse-settings summary");
  await page.check("#misuse-settings input[name=shadow]");
  await page.fill("#misuse-settings input[name=reason]", "trial month");
  await Promise.all([page.waitForNavigation(), page.click("#misuse-settings button[type=submit]")]);
  assert.match(await page.textContent(".flash"), /Detection settings saved/);
  assert.match(await page.textContent("#misuse-settings summary"), /shadow mode/);
  // Shadow mode: Bo drifts hard and is never blocked.
  for (const prompt of [...OFF_TASK, ...OFF_TASK]) assert.equal((await chat(tokens.bo, prompt)).status, 200);
  // Shadow off again, from the same form.
  await page.click("#misuse-settings summary");
  await page.uncheck("#misuse-settings input[name=shadow]");
  await Promise.all([page.waitForNavigation(), page.click("#misuse-settings button[type=submit]")]);
  assert.doesNotMatch(await page.textContent("#misuse-settings summary"), /shadow mode/);
});
