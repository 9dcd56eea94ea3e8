//! Rewriting a provider's SSE stream event by event, on the way through:
//! complete events pass at once, only an incomplete trailing event is held
//! between chunks. Each [`EventRewrite`] sees whole events (with their
//! blank line) and writes them back, changed or not, or drops them.

use bytes::Bytes;

pub trait EventRewrite: Send {
    /// Writes `event` (or its replacement, or nothing) to `out`.
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>);
    /// Called once when the provider's stream ends.
    fn end(&mut self, _out: &mut Vec<u8>) {}
}

/// The `data:` payload of one event, if it has one.
pub fn data_of(event: &[u8]) -> Option<&[u8]> {
    let text = event.trim_ascii();
    text.strip_prefix(b"data:").map(<[u8]>::trim_ascii)
}

/// The rewrites of one response, applied in order to each event.
pub struct SseRewriter {
    pending: Vec<u8>,
    rewrites: Vec<Box<dyn EventRewrite>>,
    finished: bool,
}

impl SseRewriter {
    pub fn new(rewrites: Vec<Box<dyn EventRewrite>>) -> Self {
        Self {
            pending: Vec::new(),
            rewrites,
            finished: false,
        }
    }

    /// Passes `event` through the rewrites from `first` on; the last one
    /// writes straight into `out`, so one rewrite copies nothing extra.
    fn apply(&mut self, first: usize, event: &[u8], out: &mut Vec<u8>) {
        match self.rewrites.len() - first.min(self.rewrites.len()) {
            0 => out.extend_from_slice(event),
            1 => self.rewrites[first].event(event, out),
            _ => {
                let mut next = Vec::with_capacity(event.len());
                self.rewrites[first].event(event, &mut next);
                // A rewrite may write several events (a translation does):
                // the next one sees each on its own.
                let mut rest = &next[..];
                while !rest.is_empty() {
                    let end = rest
                        .windows(2)
                        .position(|w| w == b"\n\n")
                        .map_or(rest.len(), |p| p + 2);
                    let (one, tail) = rest.split_at(end);
                    self.apply(first + 1, one, out);
                    rest = tail;
                }
            }
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let Some(end) = self.pending.windows(2).rposition(|w| w == b"\n\n") else {
            return Bytes::new();
        };
        let complete: Vec<u8> = self.pending.drain(..end + 2).collect();
        let mut out = Vec::with_capacity(complete.len());
        let mut rest = &complete[..];
        while let Some(pos) = rest.windows(2).position(|w| w == b"\n\n") {
            let (event, tail) = rest.split_at(pos + 2);
            self.apply(0, event, &mut out);
            rest = tail;
        }
        Bytes::from(out)
    }

    /// Whatever is left when the provider's stream ends.
    pub fn finish(&mut self) -> Bytes {
        if self.finished {
            return Bytes::new();
        }
        self.finished = true;
        let mut out = Vec::new();
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.apply(0, &rest, &mut out);
        }
        for i in 0..self.rewrites.len() {
            let mut tail = Vec::new();
            self.rewrites[i].end(&mut tail);
            if !tail.is_empty() {
                self.apply(i + 1, &tail, &mut out);
            }
        }
        Bytes::from(out)
    }
}

/// Removes the usage-only chunk (`"choices":[]` with a `usage` object) that
/// Warden asked for when the client did not.
pub struct HideUsageChunk;

impl EventRewrite for HideUsageChunk {
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if !is_usage_chunk(event) {
            out.extend_from_slice(event);
        }
    }
}

/// An event whose data is `{"choices": [], "usage": {...}, ...}`, however
/// the provider spaces its JSON. Only events that mention `"usage"` are
/// parsed.
fn is_usage_chunk(event: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Chunk {
        choices: Option<Vec<serde::de::IgnoredAny>>,
        usage: Option<serde_json::Map<String, serde_json::Value>>,
    }
    if !event.windows(7).any(|w| w == b"\"usage\"") {
        return false;
    }
    let data = event
        .split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"data:"))
        .next();
    let chunk = data.and_then(|d| serde_json::from_slice::<Chunk>(d.trim_ascii()).ok());
    chunk.is_some_and(|c| c.choices.is_some_and(|c| c.is_empty()) && c.usage.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_chunk_is_known_however_it_is_spaced() {
        let spaced = b"data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 1}}\n\n";
        let tight = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n";
        let content = b"data: {\"choices\": [{\"delta\": {\"content\": \"usage\"}}]}\n\n";
        let null_usage = b"data: {\"choices\": [], \"usage\": null}\n\n";
        assert!(is_usage_chunk(spaced) && is_usage_chunk(tight));
        assert!(!is_usage_chunk(content) && !is_usage_chunk(null_usage));
    }

    #[test]
    fn the_usage_chunk_is_removed_and_everything_else_kept() {
        let mut f = SseRewriter::new(vec![Box::new(HideUsageChunk)]);
        let mut out = Vec::new();
        out.extend_from_slice(
            &f.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\nda"),
        );
        out.extend_from_slice(
            &f.feed(b"ta: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n"),
        );
        out.extend_from_slice(&f.feed(b"\n"));
        out.extend_from_slice(&f.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\ndata: [DONE]\n\n"
        );
    }
}
