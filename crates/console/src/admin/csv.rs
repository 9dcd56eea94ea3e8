//! CSV for spreadsheets: the request log and usage exports.

/// One CSV field: quoted when needed, and never read as a formula by a
/// spreadsheet (a prompt may start with `=`).
pub fn field(out: &mut String, value: &str) {
    let guarded = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if guarded || value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if guarded {
            out.push('\'');
        }
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// One line of fields.
pub fn row(out: &mut String, fields: &[String]) {
    for (i, value) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, value);
    }
    out.push('\n');
}

/// A CSV download's headers.
pub fn response(body: crate::http::Body, file_name: &str) -> hyper::Response<crate::http::Body> {
    use hyper::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
    let mut response = hyper::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
            .unwrap_or(HeaderValue::from_static("attachment")),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_never_formulas() {
        let mut out = String::new();
        row(
            &mut out,
            &[
                "plain".into(),
                "a, \"b\"\nc".into(),
                "=HYPERLINK(\"x\")".into(),
            ],
        );
        assert_eq!(
            out,
            "plain,\"a, \"\"b\"\"\nc\",\"'=HYPERLINK(\"\"x\"\")\"\n"
        );
    }
}
