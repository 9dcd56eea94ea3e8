// {{name}}: a Warden guardrail. Refuses prompts that contain the configured
// `deny_word` and passes answers unchanged; change it to your rule.
//
// Module-level work runs once, when the component is built; a call only pays
// for what the functions do.

import { get } from "warden:policy/config@{{wit_version}}";

export const guardrail = {
  onRequest(context, messages) {
    const word = get("deny_word")?.toLowerCase();
    if (word === undefined) return { tag: "allow" };
    const found = messages.some(
      (m) => m.role === "user" && m.content.toLowerCase().includes(word),
    );
    return found ? { tag: "deny", val: `prompts may not mention '${word}'` } : { tag: "allow" };
  },

  onResponse(context, text) {
    return { tag: "allow" };
  },
};
