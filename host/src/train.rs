//! `warden train intent`: fits the default intent classifier
//! (plugins/intent-model) on a labelled set and writes its weights, which
//! the intent plugin embeds at build time. Everything is chosen on held-out
//! *tasks* of the training set, never on the evaluation set: the threshold
//! for "major" comes from leave-one-task-out predictions, and
//! `--cross-validate` scores the whole procedure the same way (nested).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};
use warden_intent_model::{self as model, Example, Model, TaskTerms, TrainOptions, Words};

use crate::eval::{drift_name, read_data};

/// One training prompt: its task, features and labels, and its text.
struct Labelled {
    task: String,
    example: Example,
    prompt: String,
}

fn examples(data_dir: &Path) -> anyhow::Result<Vec<Labelled>> {
    let (tasks, raw) = read_data(data_dir)?;
    let terms: HashMap<&String, TaskTerms> = tasks
        .iter()
        .map(|(id, t)| (id, TaskTerms::new(&t.title, &t.description, &t.keywords)))
        .collect();
    let mut scratch = Words::default();
    raw.iter()
        .map(|e| {
            let task = terms
                .get(&e.task)
                .ok_or_else(|| anyhow::anyhow!("unknown task '{}'", e.task))?;
            let mut features = Vec::new();
            model::features(&e.prompt, task, &mut scratch, &mut features);
            let drift = model::DRIFTS
                .iter()
                .position(|d| *d == drift_name(&e.deviation))
                .ok_or_else(|| anyhow::anyhow!("unknown deviation '{}'", e.deviation))?;
            let label = model::LABELS.iter().position(|l| *l == e.intent);
            Ok(Labelled {
                task: e.task.clone(),
                example: Example {
                    features,
                    drift,
                    label,
                },
                prompt: e.prompt.clone(),
            })
        })
        .collect()
}

fn task_ids(data: &[&Labelled]) -> Vec<String> {
    let mut ids: Vec<String> = data.iter().map(|l| l.task.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

fn weights_of(data: &[&Labelled], options: &TrainOptions) -> Model {
    let set: Vec<Example> = data
        .iter()
        .map(|l| Example {
            features: l.example.features.clone(),
            drift: l.example.drift,
            label: l.example.label,
        })
        .collect();
    model::train(&set, options)
}

/// Precision held-out major calls must keep: the product's goal (0.9) with
/// a margin, since a new tenant's tasks are not the training tasks.
const TARGET_PRECISION: f32 = 0.92;

/// The lowest threshold at which the calls it makes over `scored` (truth is
/// major, probability of major) are still `TARGET_PRECISION` precise: as
/// many misusers caught as that precision allows.
fn best_threshold(scored: &mut [(bool, f32)]) -> f32 {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (mut best, mut tp) = (0.5, 0.0);
    for (i, (major, p)) in scored.iter().enumerate() {
        tp += f32::from(u8::from(*major));
        // Only at the last of equal probabilities is the cut a real choice.
        let boundary = scored.get(i + 1).is_none_or(|next| next.1 < *p);
        if *major && boundary && tp / (i as f32 + 1.0) >= TARGET_PRECISION {
            best = *p;
        }
    }
    best
}

/// Trains on `data`, with the threshold chosen on its own tasks held out
/// one at a time.
fn fit(data: &[&Labelled], options: &TrainOptions) -> Model {
    let mut scored = Vec::new();
    for held_out in task_ids(data) {
        let (test, train): (Vec<&Labelled>, Vec<&Labelled>) =
            data.iter().partition(|l| l.task == held_out);
        let weights = weights_of(&train, options);
        scored.extend(test.iter().map(|l| {
            let p = weights.predict(&l.example.features).drift[2];
            (l.example.drift == 2, p)
        }));
    }
    let mut trained = weights_of(data, options);
    trained.major_threshold = best_threshold(&mut scored);
    trained
}

/// Precision and recall of major deviations over (truth, prediction) pairs.
fn major_scores(pairs: &[(usize, usize)]) -> (f64, f64) {
    let major = 2;
    let tp = pairs
        .iter()
        .filter(|(w, g)| *w == major && *g == major)
        .count() as f64;
    let predicted = pairs.iter().filter(|(_, g)| *g == major).count() as f64;
    let actual = pairs.iter().filter(|(w, _)| *w == major).count() as f64;
    (tp / predicted.max(1.0), tp / actual.max(1.0))
}

/// Trains on every example and writes the weights to `out`.
pub fn intent(data_dir: &Path, out: &Path, options: &TrainOptions) -> anyhow::Result<Value> {
    let data = examples(data_dir)?;
    let all: Vec<&Labelled> = data.iter().collect();
    let trained = fit(&all, options);
    let pairs: Vec<(usize, usize)> = data
        .iter()
        .map(|l| {
            (
                l.example.drift,
                trained.predict(&l.example.features).drift(),
            )
        })
        .collect();
    let (precision, recall) = major_scores(&pairs);
    std::fs::write(out, trained.to_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    Ok(json!({
        "examples": data.len(),
        "written": out.display().to_string(),
        "major_threshold": trained.major_threshold,
        "training_set_major": { "precision": precision, "recall": recall },
    }))
}

/// Leave-one-task-out: each task's prompts are scored by a model fitted
/// (threshold included) on the other tasks only, as a tenant's new task
/// will be.
pub fn cross_validate(data_dir: &Path, options: &TrainOptions) -> anyhow::Result<Value> {
    let data = examples(data_dir)?;
    let all: Vec<&Labelled> = data.iter().collect();
    let mut pairs = Vec::new();
    let mut per_task = serde_json::Map::new();
    let mut errors = Vec::new();
    let (mut labelled, mut right_labels) = (0usize, 0usize);
    for held_out in task_ids(&all) {
        let (test, train): (Vec<&Labelled>, Vec<&Labelled>) =
            all.iter().partition(|l| l.task == held_out);
        let trained = fit(&train, options);
        let mut task_pairs = Vec::new();
        for l in &test {
            let prediction = trained.predict(&l.example.features);
            let (want, got) = (l.example.drift, prediction.drift());
            task_pairs.push((want, got));
            if (want == 2) != (got == 2) {
                errors.push(json!({ "task": held_out, "prompt": l.prompt,
                    "want": model::DRIFTS[want], "got": model::DRIFTS[got] }));
            }
            if let Some(label) = l.example.label {
                labelled += 1;
                right_labels += usize::from(prediction.label() == label);
            }
        }
        let (p, r) = major_scores(&task_pairs);
        per_task.insert(held_out, json!({ "precision": p, "recall": r }));
        pairs.extend(task_pairs);
    }
    let (precision, recall) = major_scores(&pairs);
    Ok(json!({
        "examples": data.len(),
        "held_out_major": { "precision": precision, "recall": recall },
        "held_out_label_accuracy": right_labels as f64 / labelled.max(1) as f64,
        "per_task": per_task,
        "major_errors": errors,
    }))
}
