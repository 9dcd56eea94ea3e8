// An example tenant guardrail in JavaScript (componentize-js): a prompt that
// uses one of the tenant's blocked words or phrases is refused, and the same
// words are masked in answers.
//
// Config `words`: comma-separated, matched as whole words, case-insensitive
// (default: a short list of confidential project code names, for the demo).
//
// Build (scripts/build-plugins.sh does it):
//   npx jco componentize guardrail.js --wit ../../../wit \
//       --world-name guardrail-plugin --disable all -o blocked-words.wasm
//
// Policy:
//   [[guardrails]]
//   plugin = "blocked-words"
//   config = { words = "project falcon,acme merger" }

import { get } from "warden:policy/config@0.1.0";

const DEFAULT_WORDS = "project falcon,acme merger";

// The pattern is built on the first call and kept: a warm instance serves
// many calls, and the config does not change under a running instance.
let blocked;

function blockedPattern() {
  if (blocked === undefined) {
    const words = (get("words") ?? DEFAULT_WORDS)
      .split(",")
      .map((w) => w.trim())
      .filter((w) => w.length > 0)
      .map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+"));
    blocked = words.length ? new RegExp(`\\b(?:${words.join("|")})\\b`, "gi") : null;
  }
  return blocked;
}

export const guardrail = {
  onRequest(context, messages) {
    const pattern = blockedPattern();
    if (pattern === null) return { tag: "allow" };
    for (const message of messages) {
      if (message.role !== "user") continue;
      pattern.lastIndex = 0;
      const found = pattern.exec(message.content);
      if (found) {
        return {
          tag: "deny",
          val: `'${found[0]}' may not be sent to the model under this organisation's policy`,
        };
      }
    }
    return { tag: "allow" };
  },

  onResponse(context, text) {
    const pattern = blockedPattern();
    if (pattern === null) return { tag: "allow" };
    const masked = text.replace(pattern, (word) => "*".repeat(word.length));
    return masked === text ? { tag: "allow" } : { tag: "redact", val: masked };
  },
};
