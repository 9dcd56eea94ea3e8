//! `warden train intent`: fits the default intent classifier
//! (plugins/intent-model) on the training set and writes its weights, which
//! the intent plugin embeds at build time. Everything is chosen on held-out
//! *tasks* of the training set, never on an evaluation set: the threshold
//! for "major" comes from predictions on task groups left out of training,
//! and `--cross-validate` scores the whole procedure the same way (nested).
//! The procedure itself lives in `warden_intent_model::fitting`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use warden_intent_model::fitting::{self, Prepared, Tally};
use warden_intent_model::{dataset, head_inputs, task_passage, TrainOptions, WordVectors, DRIFTS};

use crate::sentence_vectors::{Kind, SentenceVectors};

/// The sentence encoder for training: its model file, and where to cache
/// the vectors between runs. Without it only the word model is fitted.
pub struct SentenceSource {
    pub model: PathBuf,
    pub cache: Option<PathBuf>,
}

fn prepared(data_dir: &Path, sentences: Option<&SentenceSource>) -> anyhow::Result<Vec<Prepared>> {
    let data = dataset::read(data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut prepared = fitting::prepare(&data, &WordVectors::default_table());
    let Some(source) = sentences else {
        return Ok(prepared);
    };
    let mut vectors = SentenceVectors::open(&source.model, source.cache.clone())?;
    let passages: BTreeMap<&str, String> = data
        .tasks
        .iter()
        .map(|t| {
            (
                t.id.as_str(),
                task_passage(&t.title, &t.description, &t.keywords),
            )
        })
        .collect();
    let texts: Vec<(Kind, &str)> = passages
        .values()
        .map(|p| (Kind::Passage, p.as_str()))
        .chain(
            data.samples
                .iter()
                .map(|s| (Kind::Query, s.prompt.as_str())),
        )
        .collect();
    vectors.embed_all(&texts)?;
    for p in &mut prepared {
        let query = vectors.get(Kind::Query, &p.sample.prompt);
        let task = vectors.get(Kind::Passage, &passages[p.sample.task.as_str()]);
        p.sentence = query.zip(task).and_then(|(q, t)| head_inputs(q, t));
    }
    Ok(prepared)
}

/// The sentence head's file beside the word model's.
pub fn head_path(out: &Path) -> PathBuf {
    out.with_file_name("sentence-head.bin")
}

/// Trains on every example and writes the weights to `out` (and the
/// sentence head's beside it).
pub fn intent(
    data_dir: &Path,
    out: &Path,
    options: &TrainOptions,
    sentences: Option<&SentenceSource>,
) -> anyhow::Result<Value> {
    let data = prepared(data_dir, sentences)?;
    let all: Vec<&Prepared> = data.iter().collect();
    let trained = fitting::fit(&all, options);
    let mut tally = Tally::default();
    for p in &data {
        tally.add(p.example.drift, trained.predict(p).drift());
    }
    std::fs::write(out, trained.words.to_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    let mut report = json!({
        "examples": data.len(),
        "written": out.display().to_string(),
        "major_threshold": trained.words.major_threshold,
        "training_set_major": { "precision": tally.precision(), "recall": tally.recall() },
    });
    if let Some(head) = &trained.sentence {
        let path = head_path(out);
        std::fs::write(&path, head.to_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        report["sentence_head"] = json!({
            "written": path.display().to_string(),
            "word_share": head.blend.word_share,
            "major_threshold": head.blend.major_threshold,
        });
    }
    Ok(report)
}

/// Task groups of the nested cross-validation.
const GROUPS: usize = 6;

/// Each task group's prompts scored by a model fitted (threshold included)
/// on the other groups only, as a tenant's new task will be.
pub fn cross_validate(
    data_dir: &Path,
    options: &TrainOptions,
    sentences: Option<&SentenceSource>,
) -> anyhow::Result<Value> {
    let data = prepared(data_dir, sentences)?;
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
