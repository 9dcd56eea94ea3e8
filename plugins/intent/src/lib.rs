//! Default intent stage: the trained linear classifier of
//! `plugins/intent-model`, with the weights of `data/intent/model.bin`
//! (made by `warden train intent`) built into the component. It labels a
//! prompt (code, test, doc, analysis, off-topic) and says how far it strays
//! from its task (on-task, slight, major). Offline and cheap: a few hundred
//! hashed features and a lookup of seven weights each.

wit_bindgen::generate!({
    path: "../../wit",
    world: "warden:policy/intent-plugin@0.1.0",
    additional_derives: [PartialEq],
});

use std::cell::RefCell;

use exports::warden::policy::intent::{Guest, IntentRequest};
use warden::policy::types::{Drift, Intent, IntentLabel, Task};
use warden_intent_model::{features, TaskTerms, Weights, Words};

static MODEL: &[u8] = include_bytes!("../../../data/intent/model.bin");

/// Per instance: the last task's vocabulary (consecutive calls on a warm
/// instance are usually for the same task) and reusable buffers.
#[derive(Default)]
struct Scratch {
    task: Option<Task>,
    terms: TaskTerms,
    words: Words,
    features: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

struct IntentClassifier;

impl Guest for IntentClassifier {
    fn classify(request: IntentRequest) -> Intent {
        SCRATCH.with_borrow_mut(|s| {
            if s.task.as_ref() != Some(&request.task) {
                let t = &request.task;
                s.terms = TaskTerms::new(&t.title, &t.description, &t.keywords);
                s.task = Some(request.task.clone());
            }
            s.features.clear();
            features(&request.prompt, &s.terms, &mut s.words, &mut s.features);
            let weights = Weights::new(MODEL).expect("data/intent/model.bin has the model's shape");
            let prediction = weights.predict(&s.features);
            let drift = prediction.drift();
            let (drift, label) = match drift {
                0 => (Drift::OnTask, work_label(prediction.label())),
                1 => (Drift::Slight, work_label(prediction.label())),
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

fn work_label(index: usize) -> IntentLabel {
    [
        IntentLabel::Code,
        IntentLabel::Test,
        IntentLabel::Doc,
        IntentLabel::Analysis,
    ][index]
}

export!(IntentClassifier);
