//! Fuzz targets for what a client and a provider send: request bodies, and
//! the SSE stream Warden rewrites (hiding its usage chunk, stripping the
//! model's label). Under `cargo test` each runs its small committed corpus
//! (`src/api/chat/__fuzz__/`) and a burst of random inputs; for a long run
//! see README, Reliability.

use bytes::Bytes;

use super::request::{rewrite_body, ChatRequest};
use super::Chat;
use crate::api::shape::ApiShape;
use crate::embedded_intent::LabelSlot;
use crate::sse::SseRewriter;
use crate::upstream::SseUsageScanner;

/// Any body: parsed or refused with an error, never a panic; a parsed one
/// is read and rewritten for forwarding without a panic either.
#[test]
fn chat_request_bodies() {
    bolero::check!().for_each(|body: &[u8]| {
        let Ok(request) = ChatRequest::parse(body) else {
            return;
        };
        let _ = request.call();
        let _ = Chat::messages(&request);
        let _ = rewrite_body(&Bytes::copy_from_slice(body), true, Some(100), None);
    });
}

/// Any stream, cut into chunks anywhere: the rewritten output and the
/// usage found do not depend on where the chunks were cut.
#[test]
fn sse_rewriting_ignores_chunk_boundaries() {
    bolero::check!()
        .with_type::<(Vec<u8>, Vec<u16>)>()
        .for_each(|(stream, cuts)| {
            let whole = rewrite(stream, &[]);
            let chunked = rewrite(stream, cuts);
            assert_eq!(whole, chunked);
        });
}

/// The stream through Warden's rewrites (usage hidden, label stripped),
/// fed in chunks ending at `cuts`: what the client gets, the usage seen.
fn rewrite(stream: &[u8], cuts: &[u16]) -> (Vec<u8>, Option<crate::upstream::Usage>) {
    let label = LabelSlot::default();
    let mut rewriter = SseRewriter::new(Chat::stream_rewrites(true, Some(&label)));
    let mut scanner = SseUsageScanner::new(Chat::stream_usage);
    let mut out = Vec::new();
    let mut rest = stream;
    for cut in cuts {
        let at = (*cut as usize).min(rest.len());
        let (chunk, tail) = rest.split_at(at);
        scanner.feed(chunk);
        out.extend_from_slice(&rewriter.feed(chunk));
        rest = tail;
    }
    scanner.feed(rest);
    out.extend_from_slice(&rewriter.feed(rest));
    out.extend_from_slice(&rewriter.finish());
    (out, scanner.usage)
}
