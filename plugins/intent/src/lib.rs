//! Default intent stage: an offline lexicon classifier. It labels a prompt
//! (code, test, doc, analysis, off-topic) and measures how far it strays from
//! its task by word overlap with the task's title, description and keywords.
//! Cheap by design: one pass over the prompt's words, no allocation per word
//! beyond lower-casing.

wit_bindgen::generate!({
    path: "../../wit",
    world: "warden:policy/intent-plugin@0.1.0",
    additional_derives: [PartialEq],
});

use exports::warden::policy::intent::{Guest, IntentRequest};
use warden::policy::types::{Drift, Intent, IntentLabel, Task};

const CODE: &[&str] = &[
    "function",
    "code",
    "implement",
    "refactor",
    "bug",
    "compile",
    "class",
    "method",
    "api",
    "endpoint",
    "rust",
    "python",
    "javascript",
    "typescript",
    "sql",
    "query",
    "struct",
    "variable",
    "error",
    "exception",
    "stack",
    "fix",
    "module",
    "library",
    "crate",
    "package",
    "database",
    "schema",
    "json",
    "http",
    "handler",
    "async",
    "loop",
    "regex",
    "deploy",
    "docker",
    "build",
    "component",
    "css",
    "html",
    "react",
    "backend",
    "frontend",
    "migration",
    "parse",
    "serialize",
];
const TEST: &[&str] = &[
    "test",
    "tests",
    "testing",
    "unit",
    "integration",
    "assert",
    "mock",
    "fixture",
    "coverage",
    "pytest",
    "jest",
    "failing",
    "flaky",
    "regression",
    "debug",
    "reproduce",
];
const DOC: &[&str] = &[
    "document",
    "documentation",
    "docs",
    "readme",
    "comment",
    "comments",
    "docstring",
    "explain",
    "describe",
    "changelog",
    "guide",
    "tutorial",
    "spec",
    "specification",
    "summary",
    "summarize",
];
const ANALYSIS: &[&str] = &[
    "analyze",
    "analyse",
    "analysis",
    "review",
    "compare",
    "performance",
    "design",
    "architecture",
    "plan",
    "estimate",
    "tradeoff",
    "trade-off",
    "metrics",
    "profile",
    "benchmark",
    "evaluate",
];
/// Words that mark personal use or someone else's work.
const OFF_TOPIC: &[&str] = &[
    "recipe",
    "cook",
    "cooking",
    "dinner",
    "vacation",
    "holiday",
    "travel",
    "poem",
    "poetry",
    "song",
    "lyrics",
    "dating",
    "girlfriend",
    "boyfriend",
    "horoscope",
    "homework",
    "essay",
    "cover",
    "resume",
    "cv",
    "novel",
    "story",
    "movie",
    "film",
    "football",
    "soccer",
    "birthday",
    "wedding",
    "diet",
    "workout",
    "weather",
    "lottery",
    "bet",
    "betting",
    "gift",
    "joke",
];

fn hits(words: &[String], lexicon: &[&str]) -> u32 {
    words
        .iter()
        .filter(|w| lexicon.contains(&w.as_str()))
        .count() as u32
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect()
}

/// Words that carry the task's meaning (stop words dropped).
fn task_vocabulary(task: &Task) -> Vec<String> {
    const STOP: &[&str] = &[
        "the", "and", "for", "with", "our", "this", "that", "from", "into",
    ];
    let mut vocab: Vec<String> = task.keywords.iter().map(|k| k.to_lowercase()).collect();
    vocab.extend(words(&task.title));
    vocab.extend(words(&task.description));
    vocab.retain(|w| !STOP.contains(&w.as_str()));
    vocab.sort();
    vocab.dedup();
    vocab
}

thread_local! {
    /// The vocabulary of the last task seen: consecutive calls on a warm
    /// instance are usually for the same task.
    static VOCABULARY: std::cell::RefCell<(Option<Task>, Vec<String>)> =
        const { std::cell::RefCell::new((None, Vec::new())) };
}

struct IntentClassifier;

impl Guest for IntentClassifier {
    fn classify(request: IntentRequest) -> Intent {
        let prompt = words(&request.prompt);
        let on_task = VOCABULARY.with_borrow_mut(|(cached_for, vocab)| {
            // Rebuilt only when the task changes (id or content).
            if cached_for.as_ref() != Some(&request.task) {
                *vocab = task_vocabulary(&request.task);
                *cached_for = Some(request.task.clone());
            }
            prompt
                .iter()
                .filter(|w| vocab.binary_search(w).is_ok())
                .count() as u32
        });
        let scores = [
            (IntentLabel::Code, hits(&prompt, CODE)),
            (IntentLabel::Test, hits(&prompt, TEST)),
            (IntentLabel::Doc, hits(&prompt, DOC)),
            (IntentLabel::Analysis, hits(&prompt, ANALYSIS)),
        ];
        let technical: u32 = scores.iter().map(|(_, n)| n).sum();
        let off_topic = hits(&prompt, OFF_TOPIC);
        // The first label with the most hits; code when nothing matched.
        let (best, best_hits) = scores
            .iter()
            .copied()
            .fold(
                (IntentLabel::Code, 0),
                |best, s| if s.1 > best.1 { s } else { best },
            );

        let drift = if off_topic > on_task + technical / 2 {
            Drift::Major
        } else if on_task > 0 {
            Drift::OnTask
        } else if technical > 0 {
            Drift::Slight
        } else {
            Drift::Major
        };
        let (label, evidence, total) = match drift {
            Drift::Major => (
                IntentLabel::OffTopic,
                off_topic + 1,
                off_topic + technical + 1,
            ),
            _ => (best, best_hits + on_task, technical + on_task + off_topic),
        };
        let confidence = if total == 0 {
            0.5
        } else {
            (0.5 + 0.5 * evidence as f32 / total.max(1) as f32).min(0.99)
        };
        Intent {
            label,
            confidence,
            drift,
        }
    }
}

export!(IntentClassifier);
