//! The labelled sets on disk (`data/intent/<set>/`): `tasks.json`,
//! `examples.jsonl` (prompts written for one task) and, in the training set,
//! `shared.jsonl` and `generated.jsonl` (prompts whose label does not
//! depend on the task: personal life, homework, side work, terse everyday
//! programming, learning and career questions). A shared prompt is paired with a few tasks of the kind
//! it applies to, chosen by a hash of its text, so the model learns it
//! against several tasks and never depends on one.

use serde::Deserialize;

use crate::{DRIFTS, LABELS};

/// Tasks a prompt of `shared.jsonl` (hand-written) and of `generated.jsonl`
/// (composed by scripts/generate-training-prompts.py) is paired with.
const SHARED_FILES: [(&str, usize); 2] = [("shared.jsonl", 3), ("generated.jsonl", 1)];

#[derive(Deserialize, Clone, Debug)]
pub struct TaskRecord {
    pub id: String,
    pub title: String,
    pub description: String,
    pub keywords: Vec<String>,
    /// `software`, `data`, `writing` or `analysis` (training set only):
    /// which shared prompts apply to the task.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    task: Option<String>,
    prompt: String,
    intent: String,
    deviation: String,
    #[serde(default)]
    category: Option<String>,
    /// Shared prompts: `all` tasks, or only `software` tasks.
    #[serde(default, rename = "for")]
    applies_to: Option<String>,
}

/// One labelled prompt for one task.
#[derive(Clone, Debug)]
pub struct Sample {
    pub task: String,
    pub prompt: String,
    /// Index into [`DRIFTS`].
    pub drift: usize,
    /// Index into [`LABELS`]; `None` for `off_topic`.
    pub label: Option<usize>,
    /// What kind of prompt it is (`terse`, `personal`, …); `plain` when the
    /// set does not say.
    pub category: String,
    /// Written without a task (from `shared.jsonl`).
    pub shared: bool,
    /// Composed from phrase lists (`generated.jsonl`), not written whole:
    /// easier than real prompts, so never used to choose the threshold.
    pub generated: bool,
}

pub struct Dataset {
    pub tasks: Vec<TaskRecord>,
    pub samples: Vec<Sample>,
}

impl Dataset {
    pub fn task(&self, id: &str) -> Option<&TaskRecord> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// The dataset's `on_task` is the model's `on-task`.
pub fn drift_index(name: &str) -> Option<usize> {
    let name = if name == "on_task" { "on-task" } else { name };
    DRIFTS.iter().position(|d| *d == name)
}

fn read_file(dir: &std::path::Path, name: &str) -> Result<Option<String>, String> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

fn lines(text: &str, name: &str) -> Result<Vec<Line>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("{name} line {}: {e}", n + 1)))
        .collect()
}

fn sample(line: &Line, task: String, shared: bool, generated: bool) -> Result<Sample, String> {
    let drift = drift_index(&line.deviation)
        .ok_or_else(|| format!("unknown deviation '{}'", line.deviation))?;
    if line.intent != "off_topic" && !LABELS.contains(&line.intent.as_str()) {
        return Err(format!("unknown intent '{}'", line.intent));
    }
    Ok(Sample {
        task,
        prompt: line.prompt.clone(),
        drift,
        label: LABELS.iter().position(|l| *l == line.intent),
        category: line.category.clone().unwrap_or_else(|| "plain".into()),
        shared,
        generated,
    })
}

/// FNV-1a, for picking a shared prompt's tasks.
fn text_hash(text: &str, salt: usize) -> u64 {
    text.bytes()
        .chain(salt.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h: u64, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Reads the set in `dir`.
pub fn read(dir: &std::path::Path) -> Result<Dataset, String> {
    let tasks: Vec<TaskRecord> = serde_json::from_str(
        &read_file(dir, "tasks.json")?
            .ok_or_else(|| format!("{}: no tasks.json", dir.display()))?,
    )
    .map_err(|e| format!("tasks.json: {e}"))?;
    let mut samples = Vec::new();
    let examples = read_file(dir, "examples.jsonl")?
        .ok_or_else(|| format!("{}: no examples.jsonl", dir.display()))?;
    for line in lines(&examples, "examples.jsonl")? {
        let task = line
            .task
            .clone()
            .ok_or("examples.jsonl: a line without a task")?;
        if !tasks.iter().any(|t| t.id == task) {
            return Err(format!("examples.jsonl: unknown task '{task}'"));
        }
        samples.push(sample(&line, task, false, false)?);
    }
    for (name, pairings) in SHARED_FILES {
        let generated = name == "generated.jsonl";
        let Some(shared) = read_file(dir, name)? else {
            continue;
        };
        for line in lines(&shared, name)? {
            // A composed prompt for one task stays with it.
            if let Some(task) = &line.task {
                if !tasks.iter().any(|t| &t.id == task) {
                    return Err(format!("{name}: unknown task '{task}'"));
                }
                samples.push(sample(&line, task.clone(), false, generated)?);
                continue;
            }
            let fits: Vec<&TaskRecord> = tasks
                .iter()
                .filter(|t| match line.applies_to.as_deref() {
                    Some("software") => t.kind.as_deref().unwrap_or("software") == "software",
                    _ => true,
                })
                .collect();
            let mut chosen: Vec<usize> = Vec::new();
            let mut salt = 0;
            while chosen.len() < pairings.min(fits.len()) {
                let pick = (text_hash(&line.prompt, salt) % fits.len() as u64) as usize;
                if !chosen.contains(&pick) {
                    chosen.push(pick);
                }
                salt += 1;
            }
            for pick in chosen {
                samples.push(sample(&line, fits[pick].id.clone(), true, generated)?);
            }
        }
    }
    Ok(Dataset { tasks, samples })
}
