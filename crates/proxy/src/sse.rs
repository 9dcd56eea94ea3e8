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
                if !next.is_empty() {
                    self.apply(first + 1, &next, out);
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
        let has = |needle: &[u8]| event.windows(needle.len()).any(|w| w == needle);
        if !(has(b"\"choices\":[]") && has(b"\"usage\":{")) {
            out.extend_from_slice(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
