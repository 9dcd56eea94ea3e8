//! Default intent stage: the trained linear classifier of
//! `plugins/intent-model`, with the weights of `data/intent/model.bin`
//! (made by `warden train intent`) and the multilingual word vectors of
//! `data/intent/words.bin` built into the component. It labels a prompt
//! (code, test, doc, analysis, off-topic) and says how far it strays from
//! its task (on-task, slight, major). Offline and cheap: a few hundred
//! hashed features, the mean of the prompt's word vectors and its
//! closeness to the task's, and seven weights per input.
//!
//! When the host has the sentence encoder (the `embeddings` import), the
//! drift is the word model's blended with the sentence head's
//! (`data/intent/sentence-head.bin`) over the vectors of the prompt and
//! the task, which the host has embedded before this call.

wit_bindgen::generate!({
    path: "../../wit",
    world: "warden:policy/intent-plugin@0.1.0",
    additional_derives: [PartialEq],
});

use std::cell::RefCell;

use exports::warden::policy::intent::{Guest, IntentRequest};
use warden::policy::embeddings::{embed, TextKind};
use warden::policy::kv;
use warden::policy::types::{Drift, Intent, IntentLabel, Task};
use warden_intent_model::{
    content_stems, features, head_inputs, task_passage, Examples, Features, Prediction,
    SentenceHead, TaskProfile, Weights, WordVectors, Words,
};

static MODEL: &[u8] = include_bytes!("../../../data/intent/model.bin");
static SENTENCE_HEAD: &[u8] = include_bytes!("../../../data/intent/sentence-head.bin");

/// Per instance: the last task's profile (consecutive calls on a warm
/// instance are usually for the same task) and reusable buffers.
#[derive(Default)]
struct Scratch {
    task: Option<Task>,
    profile: TaskProfile,
    words: Words,
    features: Features,
    /// The task's examples as last read from the key-value store, and
    /// prepared from those bytes.
    examples_source: Vec<u8>,
    examples: Examples,
    /// The task as the host embeds it, and its vector once the host has it.
    task_passage: String,
    task_vector: Option<Vec<f32>>,
}

/// Where the host keeps a task's confirmed on-task prompts in this plugin's
/// key-value store (one per line): the admin's corrections and the task's
/// example prompts.
fn examples_key(task_id: &str) -> String {
    format!("examples/{task_id}")
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

struct IntentClassifier;

impl Guest for IntentClassifier {
    fn classify(request: IntentRequest) -> Intent {
        SCRATCH.with_borrow_mut(|s| {
            let vectors = WordVectors::default_table();
            if s.task.as_ref() != Some(&request.task) {
                let t = &request.task;
                s.profile = TaskProfile::new(&vectors, &t.title, &t.description, &t.keywords);
                s.task_passage = task_passage(&t.title, &t.description, &t.keywords);
                s.task_vector = None;
                s.task = Some(request.task.clone());
            }
            features(
                &request.prompt,
                &s.profile,
                &vectors,
                &mut s.words,
                &mut s.features,
            );
            let weights = Weights::new(MODEL).expect("data/intent/model.bin has the model's shape");
            let prediction = s.with_sentence(weights.predict(&s.features), &request.prompt);
            let drift = prediction.drift();
            let label = work_label(prediction.label());
            if drift != 0 {
                // Read only when the model calls it off-task: most prompts
                // never pay for the host call.
                if let Some(closeness) = s.closeness_to_examples(&request.task.id, &vectors) {
                    if closeness >= 1.0 {
                        return Intent {
                            label,
                            confidence: closeness.min(1.0),
                            drift: Drift::OnTask,
                        };
                    }
                }
            }
            let (drift, label) = match drift {
                0 => (Drift::OnTask, label),
                1 => (Drift::Slight, label),
                _ => (Drift::Major, IntentLabel::OffTopic),
            };
            Intent {
                label,
                confidence: prediction.drift[prediction.drift()],
                drift,
            }
        })
    }
}

impl Scratch {
    /// The word model's prediction blended with the sentence head's, when
    /// the host embeds sentences; otherwise as it is.
    fn with_sentence(&mut self, words: Prediction, prompt: &str) -> Prediction {
        if self.task_vector.is_none() {
            self.task_vector = embed(&self.task_passage, TextKind::Passage);
        }
        let Some(task) = &self.task_vector else {
            return words;
        };
        let head = SentenceHead::new(SENTENCE_HEAD)
            .expect("data/intent/sentence-head.bin has the head's shape");
        let inputs = embed(prompt, TextKind::Query).and_then(|q| head_inputs(&q, task));
        match inputs {
            Some(inputs) => words.with_sentence(head.drift(&inputs), head.blend),
            None => words,
        }
    }

    /// How close the prompt last featurised comes to the task's examples
    /// (see `Examples::closeness`); `None` without examples.
    fn closeness_to_examples(&mut self, task_id: &str, vectors: &WordVectors) -> Option<f32> {
        let source = kv::get(&examples_key(task_id))?;
        let stems = content_stems(&self.words);
        if source != self.examples_source {
            let text = String::from_utf8_lossy(&source);
            self.examples = Examples::new(vectors, &text, &mut self.words);
            self.examples_source = source;
        }
        Some(
            self.examples
                .closeness(&self.features.prompt_vector(), &stems),
        )
    }
}

fn work_label(index: usize) -> IntentLabel {
    [
        IntentLabel::Code,
        IntentLabel::Test,
        IntentLabel::Doc,
        IntentLabel::Analysis,
    ][index]
}

export!(IntentClassifier);
