//! `application/x-www-form-urlencoded` bodies of the console's forms.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Request;

/// Forms are small: a reason, a few limits, a task's description.
const MAX_FORM_BYTES: usize = 64 << 10;

pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    pub async fn read(req: Request<Incoming>) -> Result<Self, String> {
        let body = Limited::new(req.into_body(), MAX_FORM_BYTES)
            .collect()
            .await
            .map_err(|_| format!("the form is larger than {} KiB", MAX_FORM_BYTES >> 10))?
            .to_bytes();
        Ok(Self {
            fields: form_urlencoded::parse(&body).into_owned().collect(),
        })
    }

    /// The first value of a field, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of a repeated field (checkboxes).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A comma- or newline-separated list field.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A whole-number field; blank is `None`, anything else not a number is an error.
    pub fn number(&self, name: &str) -> Result<Option<u64>, String> {
        self.get(name)
            .map(|v| {
                v.replace(['_', ','], "")
                    .parse()
                    .map_err(|_| format!("'{name}' must be a whole number"))
            })
            .transpose()
    }
}
