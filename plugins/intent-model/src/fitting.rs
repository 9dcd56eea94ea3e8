//! The training procedure over a [`Dataset`]: features for every sample,
//! the major threshold chosen on held-out *tasks*, cross-validation by task
//! groups, and scores per category. Everything is chosen on the training
//! set's own tasks, never on an evaluation set.

use crate::dataset::{Dataset, Sample};
use crate::{
    combine, features, train, Example, Features, HeadModel, Model, Prediction, TaskProfile,
    TrainOptions, WordVectors, Words,
};

/// A sample with its features.
pub struct Prepared {
    pub sample: Sample,
    pub example: Example,
    /// The sentence head's inputs (see [`crate::head_inputs`]), when the
    /// trainer had the sentence encoder.
    pub sentence: Option<Vec<f32>>,
}

/// The word model and, when the data has sentence vectors, the sentence
/// head blended with it.
pub struct Fitted {
    pub words: Model,
    pub sentence: Option<HeadModel>,
}

impl Fitted {
    /// The blended prediction when both the head and the sample's sentence
    /// inputs are there, otherwise the word model's.
    pub fn predict(&self, p: &Prepared) -> Prediction {
        let words = self.words.predict(&p.example.features);
        match (&self.sentence, &p.sentence) {
            (Some(head), Some(inputs)) => words.with_sentence(head.drift(inputs), head.blend),
            _ => words,
        }
    }
}

/// Features of every sample of `data`.
pub fn prepare(data: &Dataset, vectors: &WordVectors) -> Vec<Prepared> {
    let profiles: Vec<(String, TaskProfile)> = data
        .tasks
        .iter()
        .map(|t| {
            let profile = TaskProfile::new(vectors, &t.title, &t.description, &t.keywords);
            (t.id.clone(), profile)
        })
        .collect();
    let mut words = Words::default();
    data.samples
        .iter()
        .map(|s| {
            let profile = &profiles
                .iter()
                .find(|(id, _)| *id == s.task)
                .expect("known task")
                .1;
            let mut f = Features::default();
            features(&s.prompt, profile, vectors, &mut words, &mut f);
            Prepared {
                sample: s.clone(),
                example: Example {
                    features: f,
                    drift: s.drift,
                    label: s.label,
                },
                sentence: None,
            }
        })
        .collect()
}

/// Task groups for held-out scoring: every task in exactly one group.
fn folds(data: &[&Prepared], count: usize) -> Vec<Vec<String>> {
    let mut ids: Vec<String> = data.iter().map(|p| p.sample.task.clone()).collect();
    ids.sort();
    ids.dedup();
    let count = count.min(ids.len()).max(1);
    let mut groups = vec![Vec::new(); count];
    for (i, id) in ids.into_iter().enumerate() {
        groups[i % count].push(id);
    }
    groups
}

/// The samples of `group`'s tasks (held out) and the rest (to train on).
/// Shared prompts are paired with several tasks: the held-out group's
/// copies stay out of training too.
fn split<'a>(data: &[&'a Prepared], group: &[String]) -> (Vec<&'a Prepared>, Vec<&'a Prepared>) {
    let (test, train): (Vec<&Prepared>, Vec<&Prepared>) =
        data.iter().partition(|p| group.contains(&p.sample.task));
    let held_out: Vec<&str> = test.iter().map(|p| p.sample.prompt.as_str()).collect();
    let train = train
        .into_iter()
        .filter(|p| !(p.sample.shared && held_out.contains(&p.sample.prompt.as_str())))
        .collect();
    (test, train)
}

/// Both models on `data`, thresholds not chosen yet. The head is fitted
/// only when every sample has sentence inputs.
fn fit_once(data: &[&Prepared], options: &TrainOptions) -> Fitted {
    let set: Vec<Example> = data.iter().map(|p| p.example.clone()).collect();
    let words = train(&set, options);
    let inputs: Option<Vec<(&[f32], usize)>> = data
        .iter()
        .map(|p| Some((p.sentence.as_deref()?, p.example.drift)))
        .collect();
    let sentence = inputs.map(|inputs| {
        let mut head = HeadModel::train(&inputs, &options.sentence);
        head.blend.word_share = options.word_share;
        head
    });
    Fitted { words, sentence }
}

/// Held-out major calls must keep this precision: an honest user wrongly
/// flagged costs more than a misuser caught a call later (the deviation
/// stage needs several calls to block anyway). Today's model keeps it at
/// the threshold's floor of 0.5 already, so a prompt is major when that is
/// at least as likely as not.
const TARGET_PRECISION: f32 = 0.94;

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
    best.max(0.5)
}

/// Folds for choosing the threshold inside a fit.
const THRESHOLD_FOLDS: usize = 6;

/// Trains on `data`, with the thresholds (the word model's alone, and the
/// blend's) chosen on its own tasks held out a group at a time.
pub fn fit(data: &[&Prepared], options: &TrainOptions) -> Fitted {
    let (mut word_scores, mut blend_scores) = (Vec::new(), Vec::new());
    for group in folds(data, THRESHOLD_FOLDS) {
        let (test, train) = split(data, &group);
        let fitted = fit_once(&train, options);
        for p in test.iter().filter(|p| !p.sample.generated) {
            let major = p.example.drift == 2;
            let words = fitted.words.predict(&p.example.features).drift;
            word_scores.push((major, words[2]));
            if let (Some(head), Some(inputs)) = (&fitted.sentence, &p.sentence) {
                let blended = combine(words, head.drift(inputs), head.blend.word_share);
                blend_scores.push((major, blended[2]));
            }
        }
    }
    let mut trained = fit_once(data, options);
    trained.words.major_threshold = best_threshold(&mut word_scores);
    if let Some(head) = &mut trained.sentence {
        head.blend.major_threshold = best_threshold(&mut blend_scores);
    }
    trained
}

/// Counts behind precision and recall of major deviations, and drift
/// accuracy, for one group of prompts.
#[derive(Default, Clone, Copy, Debug)]
pub struct Tally {
    pub prompts: u32,
    pub majors: u32,
    pub called_major: u32,
    pub caught: u32,
    pub drift_right: u32,
}

impl Tally {
    pub fn add(&mut self, want: usize, got: usize) {
        self.prompts += 1;
        self.majors += u32::from(want == 2);
        self.called_major += u32::from(got == 2);
        self.caught += u32::from(want == 2 && got == 2);
        self.drift_right += u32::from(want == got);
    }

    pub fn precision(&self) -> f64 {
        f64::from(self.caught) / f64::from(self.called_major.max(1))
    }

    pub fn recall(&self) -> f64 {
        f64::from(self.caught) / f64::from(self.majors.max(1))
    }

    /// Prompts called major that were not (false alarms).
    pub fn false_majors(&self) -> u32 {
        self.called_major - self.caught
    }
}

/// A held-out prediction of one sample.
pub struct Scored<'a> {
    pub prepared: &'a Prepared,
    pub prediction: Prediction,
}

/// Cross-validation by task groups: each group's prompts are scored by a
/// model fitted (threshold included) on the other groups only, as a
/// tenant's new task will be.
pub fn cross_validate<'a>(
    data: &'a [Prepared],
    options: &TrainOptions,
    groups: usize,
) -> Vec<Scored<'a>> {
    let all: Vec<&Prepared> = data.iter().collect();
    let mut scored = Vec::new();
    for group in folds(&all, groups) {
        let (test, train) = split(&all, &group);
        let model = fit(&train, options);
        scored.extend(test.into_iter().map(|p| Scored {
            prepared: p,
            prediction: model.predict(p),
        }));
    }
    scored
}
