//! A tenant's branding: the display name, accent colour and logo its
//! console pages and e-mails show. Only these three values: no custom
//! CSS or markup, so the console's Content-Security-Policy stays strict
//! and nothing a tenant uploads runs in anyone's browser.

use serde::{Deserialize, Serialize};

/// The largest logo accepted.
pub const MAX_LOGO_BYTES: usize = 256 << 10;
/// The most characters of a display name.
const MAX_NAME_CHARS: usize = 60;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `#rrggbb`, lower case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accent_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<Logo>,
}

impl Branding {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A stored logo: served at `/ui/brand/logo/{sha256}` (content-addressed:
/// the address names no tenant and never changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logo {
    pub sha256: String,
    pub content_type: String,
    pub bytes: u64,
}

/// A display name as given, checked; `""` clears it.
pub fn display_name(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_NAME_CHARS || text.chars().any(char::is_control) {
        return Err(format!(
            "a display name is up to {MAX_NAME_CHARS} printable characters"
        ));
    }
    Ok(Some(text.to_string()))
}

/// An accent colour as `#rgb` or `#rrggbb`, normalised to `#rrggbb`; `""`
/// clears it.
pub fn accent_color(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let hex = text.strip_prefix('#').unwrap_or(text);
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("'{text}' is not a colour like #2f5bd3"));
    }
    match hex.len() {
        6 => Ok(Some(format!("#{}", hex.to_ascii_lowercase()))),
        3 => Ok(Some(hex.chars().flat_map(|c| [c, c]).fold(
            String::from("#"),
            |mut s, c| {
                s.push(c.to_ascii_lowercase());
                s
            },
        ))),
        _ => Err(format!("'{text}' is not a colour like #2f5bd3")),
    }
}

/// The colour mixed with white (`white` parts in 100): a soft background
/// for badges in the accent colour.
pub fn soften(accent: &str, white: u32) -> String {
    let channel = |i: usize| u32::from_str_radix(&accent[i..i + 2], 16).unwrap_or(0);
    let mix = |c: u32| (c * (100 - white) + 255 * white) / 100;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(channel(1)),
        mix(channel(3)),
        mix(channel(5))
    )
}

/// The image type of a logo, by its first bytes (the name or a declared
/// type proves nothing): PNG, JPEG or WebP. SVG is refused: it can carry
/// script.
pub fn sniff_logo(bytes: &[u8]) -> Result<&'static str, String> {
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(format!(
            "the logo is {} KiB; the limit is {} KiB",
            bytes.len().div_ceil(1024),
            MAX_LOGO_BYTES >> 10
        ));
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Ok("image/jpeg")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Ok("image/webp")
    } else {
        Err("a logo is a PNG, JPEG or WebP image".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_normalised_and_anything_else_refused() {
        assert_eq!(accent_color("#2F5BD3").unwrap().unwrap(), "#2f5bd3");
        assert_eq!(accent_color("0a0").unwrap().unwrap(), "#00aa00");
        assert_eq!(accent_color("").unwrap(), None);
        for bad in ["red", "#12345", "#1234567", "#zzzzzz", "url(x)", "#fff;}"] {
            assert!(accent_color(bad).is_err(), "{bad}");
        }
        assert_eq!(soften("#000000", 90), "#e5e5e5");
    }

    #[test]
    fn a_logo_is_an_image_by_its_bytes_and_small() {
        assert_eq!(sniff_logo(b"\x89PNG\r\n\x1a\n...").unwrap(), "image/png");
        assert_eq!(sniff_logo(&[0xff, 0xd8, 0xff, 0xe0]).unwrap(), "image/jpeg");
        assert!(sniff_logo(b"<svg onload=alert(1)>").is_err());
        let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
        big.resize(MAX_LOGO_BYTES + 1, 0);
        assert!(sniff_logo(&big).unwrap_err().contains("limit is 256 KiB"));
        assert!(display_name("Acme\n<b>").is_err());
        assert_eq!(display_name("  Acme GmbH ").unwrap().unwrap(), "Acme GmbH");
    }
}
