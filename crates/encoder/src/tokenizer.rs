//! XLM-RoBERTa's SentencePiece unigram tokenizer: each character
//! normalised by the model's map, runs of spaces collapsed, a leading
//! metaspace (U+2581) added and spaces replaced by it, then the split into
//! pieces with the highest total score (Viterbi); a character no piece
//! covers becomes the unknown piece.

use std::collections::HashMap;

use crate::file::{floats, Reader};
use crate::LoadError;

const METASPACE: char = '\u{2581}';

pub(crate) struct Tokenizer {
    pieces: HashMap<Box<[u8]>, u32>,
    scores: Vec<f32>,
    /// The unknown piece's score: below every real piece.
    unknown_score: f32,
    longest_piece: usize,
    normalise: HashMap<char, Box<[char]>>,
    pub(crate) begin: u32,
    pub(crate) end: u32,
    unknown: u32,
}

impl Tokenizer {
    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Self, LoadError> {
        let count = reader.size()?;
        let begin = reader.u32()?;
        let end = reader.u32()?;
        let _padding = reader.u32()?;
        let unknown = reader.u32()?;
        let blob_len = reader.u64()? as usize;
        let offsets: Vec<usize> = reader
            .take((count + 1) * 4)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .collect();
        let scores = floats(reader.take(count * 4)?);
        let blob = reader.take(blob_len)?;
        let mut pieces = HashMap::with_capacity(count);
        let mut longest_piece = 1;
        for (id, span) in offsets.windows(2).enumerate() {
            let piece = blob
                .get(span[0]..span[1])
                .ok_or_else(|| LoadError("a piece lies outside the vocabulary".into()))?;
            longest_piece = longest_piece.max(piece.len());
            if !piece.is_empty() {
                pieces.entry(piece.into()).or_insert(id as u32);
            }
        }
        let lowest = scores.iter().copied().fold(f32::MAX, f32::min);
        Ok(Self {
            pieces,
            scores,
            unknown_score: lowest - 10.0,
            longest_piece,
            normalise: read_normalisation(reader)?,
            begin,
            end,
            unknown,
        })
    }

    /// The pieces of `text`, without the begin and end markers.
    pub(crate) fn pieces(&self, text: &str) -> Vec<u32> {
        let normalised = self.normalised(text);
        // Character starts in the normalised bytes, and the end.
        let mut starts: Vec<usize> = normalised.char_indices().map(|(i, _)| i).collect();
        starts.push(normalised.len());
        let bytes = normalised.as_bytes();
        let chars = starts.len() - 1;
        // best[e]: the best score of a split of the first e characters, and
        // the last piece of it with the character it starts at.
        let mut best = vec![(f32::NEG_INFINITY, self.unknown, 0usize); chars + 1];
        best[0].0 = 0.0;
        for from in 0..chars {
            let score = best[from].0;
            if score == f32::NEG_INFINITY {
                continue;
            }
            for to in from + 1..=chars {
                let span = &bytes[starts[from]..starts[to]];
                if span.len() > self.longest_piece {
                    break;
                }
                if let Some(&id) = self.pieces.get(span) {
                    let total = score + self.scores[id as usize];
                    if id != self.unknown && total > best[to].0 {
                        best[to] = (total, id, from);
                    }
                }
            }
            let unknown = score + self.unknown_score;
            if unknown > best[from + 1].0 {
                best[from + 1] = (unknown, self.unknown, from);
            }
        }
        let mut out = Vec::new();
        let mut at = chars;
        while at > 0 {
            out.push(best[at].1);
            at = best[at].2;
        }
        out.reverse();
        out
    }

    fn normalised(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 4);
        let mut last_was_space = false;
        for c in text.chars() {
            let mapped = self.normalise.get(&c);
            for &c in mapped.map_or(std::slice::from_ref(&c), |m| &m[..]) {
                if c == ' ' && last_was_space {
                    continue;
                }
                if out.is_empty() && c != ' ' {
                    out.push(METASPACE);
                }
                out.push(if c == ' ' { METASPACE } else { c });
                last_was_space = c == ' ';
            }
        }
        if out.is_empty() {
            out.push(METASPACE);
        }
        out
    }
}

/// The per-character normalisation map: (code point, count, replacements).
fn read_normalisation(reader: &mut Reader<'_>) -> Result<HashMap<char, Box<[char]>>, LoadError> {
    let count = reader.size()?;
    let len = reader.size()?;
    let mut map = Reader::new(reader.take(len)?, 0);
    let mut out = HashMap::with_capacity(count);
    for _ in 0..count {
        let from = map.u32()?;
        let replacements = usize::from(map.u8()?);
        let mut to = Vec::with_capacity(replacements);
        for _ in 0..replacements {
            to.extend(char::from_u32(map.u32()?));
        }
        if let Some(from) = char::from_u32(from) {
            out.insert(from, to.into_boxed_slice());
        }
    }
    Ok(out)
}
