//! The console's form bodies: `application/x-www-form-urlencoded`, and
//! `multipart/form-data` for the one form that sends a file (a plugin).

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, BodyStream, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::Request;

/// Forms are small: a reason, a few limits, a task's description.
const MAX_FORM_BYTES: usize = 64 << 10;
/// A component, as the admin API accepts it.
const MAX_FILE_BYTES: u64 = crate::admin_api::MAX_PLUGIN_BYTES as u64;

/// A file sent with a form.
pub struct Upload {
    pub bytes: Bytes,
}

pub struct Form {
    fields: Vec<(String, String)>,
    pub file: Option<Upload>,
}

impl Form {
    /// Reads a form; `allow_file` lets it be multipart (the plugin upload),
    /// any other form is refused before its body is read.
    pub async fn read(req: Request<Incoming>, allow_file: bool) -> Result<Self, String> {
        let boundary = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok());
        if let Some(boundary) = boundary {
            if !allow_file {
                return Err("this form does not take files".into());
            }
            return Self::read_multipart(req.into_body(), boundary).await;
        }
        let body = Limited::new(req.into_body(), MAX_FORM_BYTES)
            .collect()
            .await
            .map_err(|_| format!("the form is larger than {} KiB", MAX_FORM_BYTES >> 10))?
            .to_bytes();
        Ok(Self {
            fields: form_urlencoded::parse(&body).into_owned().collect(),
            file: None,
        })
    }

    /// Text fields and at most one file (the field named `file`).
    async fn read_multipart(body: Incoming, boundary: String) -> Result<Self, String> {
        let stream =
            BodyStream::new(body).try_filter_map(|frame| async move { Ok(frame.into_data().ok()) });
        let limits = multer::SizeLimit::new()
            .whole_stream(MAX_FILE_BYTES + MAX_FORM_BYTES as u64)
            .per_field(MAX_FORM_BYTES as u64)
            .for_field("file", MAX_FILE_BYTES);
        let mut multipart = multer::Multipart::with_constraints(
            stream,
            boundary,
            multer::Constraints::new().size_limit(limits),
        );
        let mut form = Self {
            fields: Vec::new(),
            file: None,
        };
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| format!("unreadable form: {e}"))?
        {
            let name = field.name().unwrap_or_default().to_string();
            if name == "file" {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| format!("unreadable file: {e}"))?;
                form.file = Some(Upload { bytes });
            } else {
                let text = field
                    .text()
                    .await
                    .map_err(|e| format!("unreadable form: {e}"))?;
                form.fields.push((name, text));
            }
        }
        Ok(form)
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
