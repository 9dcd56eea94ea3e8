//! Plain-text tables for listing verbs (`--json` prints the API's JSON instead).

use serde_json::Value;

/// A column: its heading and a JSON pointer into each row.
pub type Column = (&'static str, &'static str);

/// Times are kept as unix seconds (`*_at`) or milliseconds (`*at_ms`);
/// tables show them as UTC timestamps.
fn time(pointer: &str, value: &Value) -> Option<String> {
    let n = value.as_i64()?;
    let at = if pointer.ends_with("at_ms") {
        jiff::Timestamp::from_millisecond(n).ok()?
    } else if pointer.ends_with("_at") {
        jiff::Timestamp::from_second(n).ok()?
    } else {
        return None;
    };
    Some(at.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
}

fn cell(row: &Value, pointer: &str) -> String {
    match row.pointer(pointer) {
        None | Some(Value::Null) => "-".into(),
        Some(value) if time(pointer, value).is_some() => time(pointer, value).unwrap_or_default(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or_default()),
        Some(other) => other.to_string(),
    }
}

/// Renders `rows` with aligned columns; numbers are right-aligned.
pub fn render(rows: &[Value], columns: &[Column]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|(_, p)| cell(row, p)).collect())
        .collect();
    // Right-align columns of numbers (gaps allowed), but not times.
    let numeric: Vec<bool> = columns
        .iter()
        .map(|(_, pointer)| {
            let values: Vec<Option<&Value>> = rows.iter().map(|r| r.pointer(pointer)).collect();
            time(pointer, &Value::from(0)).is_none()
                && values.iter().any(|v| matches!(v, Some(Value::Number(_))))
                && values
                    .iter()
                    .all(|v| matches!(v, Some(Value::Number(_) | Value::Null) | None))
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (heading, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([heading.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if numeric[i] {
                    format!("{v:>width$}", width = widths[i])
                } else {
                    format!("{v:<width$}", width = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(columns.iter().map(|(h, _)| *h).collect());
    for row in &cells {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_text_left_and_numbers_right() {
        let rows = vec![
            serde_json::json!({"id": "ali", "n": 5, "score": 0.5}),
            serde_json::json!({"id": "bo", "n": 120, "score": null}),
        ];
        let text = render(
            &rows,
            &[("user", "/id"), ("calls", "/n"), ("score", "/score")],
        );
        assert_eq!(
            text,
            "user  calls  score\nali       5   0.50\nbo      120      -"
        );
    }
}
