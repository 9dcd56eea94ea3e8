//! Golden files: each `crates/proxy/tests/translate/*.json` holds a
//! translation's input and the output expected of it. A change in output
//! fails here; `UPDATE_GOLDEN=1 cargo test -p warden-proxy golden` rewrites
//! the expected outputs, to be read in the diff before committing.

use std::path::PathBuf;

use serde_json::Value;

use super::{to_anthropic, to_openai, Translation};
use crate::sse::SseRewriter;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/translate")
}

/// Clock-dependent fields, zeroed so outputs compare.
fn settle(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("created") {
                map.insert("created".into(), 0.into());
            }
            map.values_mut().for_each(settle);
        }
        Value::Array(list) => list.iter_mut().for_each(settle),
        _ => {}
    }
}

fn stream(translation: &Translation, sse: &str) -> String {
    let mut rewriter = SseRewriter::new(vec![translation.stream()]);
    // Fed in small pieces, as a provider's chunks come.
    let mut out = Vec::new();
    for piece in sse.as_bytes().chunks(37) {
        out.extend_from_slice(&rewriter.feed(piece));
    }
    out.extend_from_slice(&rewriter.finish());
    let text = String::from_utf8(out).unwrap();
    // Each event's JSON settled, the framing kept.
    text.split_inclusive("\n\n")
        .map(|event| {
            event
                .trim_end()
                .lines()
                .map(|line| match line.strip_prefix("data: ") {
                    Some(data) => match serde_json::from_str::<Value>(data) {
                        Ok(mut v) => {
                            settle(&mut v);
                            format!("data: {v}")
                        }
                        Err(_) => line.to_string(),
                    },
                    None => line.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n\n"
        })
        .collect()
}

fn run(case: &Value) -> Value {
    let model = case["model"].as_str().unwrap_or("model-x");
    let input = &case["input"];
    let translation = match case["direction"].as_str().unwrap() {
        "chat_to_anthropic" => Translation::ChatToAnthropic {
            model: model.into(),
        },
        "messages_to_chat" => Translation::MessagesToChat {
            model: model.into(),
        },
        other => panic!("unknown direction {other}"),
    };
    let mut out = match (case["kind"].as_str().unwrap(), &translation) {
        ("request", Translation::ChatToAnthropic { .. }) => to_anthropic::request(input, model),
        ("request", Translation::MessagesToChat { .. }) => to_openai::request(input, model),
        ("answer", _) => {
            serde_json::from_slice(&translation.answer(true, input.to_string().as_bytes())).unwrap()
        }
        ("error", _) => {
            serde_json::from_slice(&translation.answer(false, input.to_string().as_bytes()))
                .unwrap()
        }
        ("stream", _) => Value::String(stream(&translation, input.as_str().unwrap())),
        (other, _) => panic!("unknown kind {other}"),
    };
    settle(&mut out);
    out
}

#[test]
fn translations_match_their_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "golden files missing in {}",
        dir().display()
    );
    let mut failed = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut case: Value = serde_json::from_str(&text).unwrap();
        let got = run(&case);
        if update {
            case["expected"] = got;
            let pretty = serde_json::to_string_pretty(&case).unwrap() + "\n";
            std::fs::write(&path, pretty).unwrap();
        } else if case["expected"] != got {
            failed.push(format!(
                "{}:\nexpected {}\n     got {}",
                path.display(),
                case["expected"],
                got
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
