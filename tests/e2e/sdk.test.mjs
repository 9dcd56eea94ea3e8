// The official `openai` Node SDK against the real `warden demo` binary:
// chat completions, a Claude model reached through translation, the
// Responses API (plain and streamed) and embeddings, and a typed error.
//
// Run from the repository: `npm test --prefix tests/e2e` after building.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const targetDir = process.env.CARGO_TARGET_DIR || join(repo, "target");
const warden = process.env.WARDEN_BIN || join(targetDir, "release", "warden");
const TASK = "invoice-backend";
const PROMPT = [{ role: "user", content: "Add tax lines to the invoice PDF" }];

let demo, state, client, baseURL, token;

before(async () => {
  state = mkdtempSync(join(tmpdir(), "warden-sdk-node-"));
  demo = spawn(warden, ["demo", "--listen", "127.0.0.1:0", "--state-dir", join(state, "demo")], {
    cwd: repo,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let printed = "";
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the demo printed no snippet:\n${printed}`)), 180_000);
    demo.stdout.on("data", (chunk) => {
      printed += chunk;
      const found = printed.match(/base_url="([^"]+)", api_key="([^"]+)"/);
      if (found) {
        clearTimeout(timer);
        [, baseURL, token] = found;
        ok();
      }
    });
    demo.on("exit", (code) => fail(new Error(`the demo exited ${code}:\n${printed}`)));
  });
  client = new OpenAI({ baseURL, apiKey: token, defaultHeaders: { "X-Task-Id": TASK }, maxRetries: 0 });
});

after(() => {
  demo?.kill("SIGTERM");
  rmSync(state, { recursive: true, force: true });
});

test("chat completions, and a Claude model through translation", async () => {
  const gpt = await client.chat.completions.create({ model: "gpt-4o-mini", messages: PROMPT });
  assert.match(gpt.choices[0].message.content, /^Mock answer about: Add tax lines/);
  const claude = await client.chat.completions.create({ model: "claude-3-5-haiku-latest", messages: PROMPT });
  assert.match(claude.choices[0].message.content, /^Mock answer about: Add tax lines/);
  assert.ok(claude.usage.completion_tokens > 0);
  const stream = await client.chat.completions.create({ model: "claude-3-5-haiku-latest", messages: PROMPT, stream: true });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(text, claude.choices[0].message.content);
});

test("the Responses API, plain and streamed", async () => {
  const response = await client.responses.create({ model: "gpt-4o-mini", input: "Add tax lines to the invoice PDF" });
  assert.match(response.output_text, /^Mock answer about: Add tax lines/);
  assert.ok(response.usage.output_tokens > 0);
  const stream = await client.responses.create({ model: "gpt-4o-mini", input: "Add tax lines to the invoice PDF", stream: true });
  let text = "";
  let last;
  for await (const event of stream) {
    if (event.type === "response.output_text.delta") text += event.delta;
    last = event;
  }
  assert.equal(text, response.output_text);
  assert.equal(last.type, "response.completed");
});

test("embeddings", async () => {
  const result = await client.embeddings.create({ model: "text-embedding-3-small", input: ["invoice tax lines", "pdf"] });
  assert.equal(result.data.length, 2);
  assert.equal(result.data[0].embedding.length, 8);
});

test("errors are the SDK's typed errors", async () => {
  const forged = new OpenAI({ baseURL, apiKey: "forged", defaultHeaders: { "X-Task-Id": TASK }, maxRetries: 0 });
  await assert.rejects(forged.chat.completions.create({ model: "gpt-4o-mini", messages: PROMPT }), OpenAI.AuthenticationError);
  await assert.rejects(client.models.retrieve("no-such-model"), OpenAI.NotFoundError);
});
