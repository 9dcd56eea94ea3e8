//! Default intent stage: the trained linear classifier of
//! `plugins/intent-model`, with the weights of `data/intent/model.bin`
//! (made by `warden train intent`) and the multilingual word vectors of
//! `data/intent/words.bin` built into the component. It labels a prompt
//! (code, test, doc, analysis, off-topic) and says how far it strays from
//! its task (on-task, slight, major). Offline and cheap: a few hundred
//! hashed features, the mean of the prompt's word vectors and its
//! closeness to the task's, and seven weights per input.

wit_bindgen::generate!({
    path: "../../wit",
    world: "warden:policy/intent-plugin@0.1.0",
    additional_derives: [PartialEq],
});

use std::cell::RefCell;

use exports::warden::policy::intent::{Guest, IntentRequest};
use warden::policy::kv;
use warden::policy::types::{Drift, Intent, IntentLabel, Task};
use warden_intent_model::{
    content_stems, features, Examples, Features, TaskProfile, Weights, WordVectors, Words,
};

static MODEL: &[u8] = include_bytes!("../../../data/intent/model.bin");

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
            let prediction = weights.predict(&s.features);
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
