//! The README's promise: `warden demo` prints a curl line that works.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_printed_curl_line_answers_through_all_five_stages() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let state = std::env::temp_dir().join(format!("warden-demo-test-{}", std::process::id()));
    let mut demo = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["demo", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start warden demo");
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut curl_line = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("curl ") {
            curl_line = Some(line);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "demo did not print a curl line"
        );
    }
    let curl_line = curl_line.expect("a curl line");
    // Keep reading what the demo prints next, as a terminal would: with the
    // pipe closed, its next line fails (EPIPE) and takes the demo down.
    std::thread::spawn(move || lines.for_each(drop));
    let output = Command::new("bash")
        .arg("-c")
        .arg(&curl_line)
        .output()
        .expect("run curl");
    let _ = demo.kill();
    let _ = demo.wait();
    let _ = std::fs::remove_dir_all(&state);
    let text = String::from_utf8_lossy(&output.stdout).to_lowercase();
    assert!(
        text.starts_with("http/1.1 200"),
        "{text}\ncurl {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("x-warden-intent: code"), "{text}");
    assert!(text.contains("x-warden-deviation-score: 0.00"), "{text}");
    assert!(text.contains("mock answer about"), "{text}");
}
