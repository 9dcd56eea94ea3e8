//! `warden train intent`: fits the default intent classifier
//! (plugins/intent-model) on the training set and writes its weights, which
//! the intent plugin embeds at build time. Everything is chosen on held-out
//! *tasks* of the training set, never on an evaluation set: the threshold
//! for "major" comes from predictions on task groups left out of training,
//! and `--cross-validate` scores the whole procedure the same way (nested).
//! The procedure itself lives in `warden_intent_model::fitting`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use warden_intent_model::fitting::{self, Prepared, Tally};
use warden_intent_model::{dataset, TrainOptions, WordVectors, DRIFTS};

fn prepared(data_dir: &Path) -> anyhow::Result<Vec<Prepared>> {
    let data = dataset::read(data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(fitting::prepare(&data, &WordVectors::default_table()))
}

/// Trains on every example and writes the weights to `out`.
pub fn intent(data_dir: &Path, out: &Path, options: &TrainOptions) -> anyhow::Result<Value> {
    let data = prepared(data_dir)?;
    let all: Vec<&Prepared> = data.iter().collect();
    let trained = fitting::fit(&all, options);
    let mut tally = Tally::default();
    for p in &data {
        tally.add(
            p.example.drift,
            trained.predict(&p.example.features).drift(),
        );
    }
    std::fs::write(out, trained.to_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    Ok(json!({
        "examples": data.len(),
        "written": out.display().to_string(),
        "major_threshold": trained.major_threshold,
        "training_set_major": { "precision": tally.precision(), "recall": tally.recall() },
    }))
}

/// Task groups of the nested cross-validation.
const GROUPS: usize = 6;

/// Each task group's prompts scored by a model fitted (threshold included)
/// on the other groups only, as a tenant's new task will be.
pub fn cross_validate(data_dir: &Path, options: &TrainOptions) -> anyhow::Result<Value> {
    let data = prepared(data_dir)?;
    let scored = fitting::cross_validate(&data, options, GROUPS);
    let mut total = Tally::default();
    let mut categories: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut errors = Vec::new();
    let (mut labelled, mut right_labels) = (0usize, 0usize);
    for s in &scored {
        let sample = &s.prepared.sample;
        let (want, got) = (sample.drift, s.prediction.drift());
        total.add(want, got);
        categories
            .entry(&sample.category)
            .or_default()
            .add(want, got);
        if (want == 2) != (got == 2) {
            errors.push(json!({ "task": sample.task, "prompt": sample.prompt,
                "want": DRIFTS[want], "got": DRIFTS[got] }));
        }
        if let Some(label) = sample.label {
            labelled += 1;
            right_labels += usize::from(s.prediction.label() == label);
        }
    }
    Ok(json!({
        "examples": data.len(),
        "held_out_major": { "precision": total.precision(), "recall": total.recall() },
        "held_out_label_accuracy": right_labels as f64 / labelled.max(1) as f64,
        "categories": categories.iter().map(|(name, t)| (name.to_string(), json!({
            "prompts": t.prompts, "majors": t.majors, "false_majors": t.false_majors(),
            "missed": t.majors - t.caught,
        }))).collect::<serde_json::Map<_, _>>(),
        "major_errors": errors,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Lower-cased words, as scripts/generate-training-prompts.py splits them.
    fn words(text: &str) -> BTreeSet<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    }

    fn prompts(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| {
                let line: serde_json::Value = serde_json::from_str(l).unwrap();
                line["prompt"].as_str().map(String::from)
            })
            .collect()
    }

    /// A model is scored on prompts it never saw: no training prompt shares
    /// half its words with an evaluation or walkthrough prompt.
    #[test]
    fn training_data_holds_no_near_copy_of_a_held_out_prompt() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let held_out: Vec<(String, BTreeSet<String>)> = [
            "data/intent/eval/examples.jsonl",
            "data/intent/eval-2/examples.jsonl",
            "tests/data/terse-on-task.jsonl",
        ]
        .iter()
        .flat_map(|p| prompts(&root.join(p)))
        .map(|p| {
            let w = words(&p);
            (p, w)
        })
        .collect();
        let mut copies = Vec::new();
        for file in ["examples.jsonl", "shared.jsonl", "generated.jsonl"] {
            for prompt in prompts(&root.join("data/intent/train").join(file)) {
                let w = words(&prompt);
                for (test, t) in &held_out {
                    let shared = w.intersection(t).count();
                    if 2 * shared >= w.union(t).count() {
                        copies.push(format!("{file}: {prompt:?} ~ {test:?}"));
                    }
                }
            }
        }
        assert!(copies.is_empty(), "near copies:\n{}", copies.join("\n"));
    }
}
