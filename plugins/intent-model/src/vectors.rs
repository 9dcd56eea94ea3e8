//! The static multilingual word-vector table (`data/intent/words.bin`, built
//! by `scripts/build-word-vectors.py` from multilingual-e5-small), read in
//! place: no parsing and no copy when an instance starts, so the table lives
//! once in the component's memory image, shared copy-on-write by every
//! instance of every tenant.

/// Dimensions of a word vector.
pub const DIMS: usize = 256;
/// Leading dimensions (the principal components that carry the most) that
/// word-to-word closeness looks at: it compares every prompt word with
/// every task word, and the whole vector would cost four times as much.
pub const CLOSE_DIMS: usize = 64;

const HEADER: usize = 24;
/// hash, weight, two concept ids, two axes, the vector.
const ROW: usize = 4 + 1 + 2 + 2 + 2 + DIMS;
const VERSION: u32 = 3;

/// The table of the default model, built into the crate.
pub static DEFAULT_TABLE: &[u8] = include_bytes!("../../../data/intent/words.bin");

#[derive(Clone, Copy)]
pub struct WordVectors<'a> {
    slots: &'a [u8],
    rows: &'a [u8],
    slot_count: u32,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

const FNV_BASIS: u32 = 0x811c_9dc5;

fn fnv_step(hash: u32, byte: u8) -> u32 {
    (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
}

/// FNV-1a of the word's bytes, as the build script computes it.
pub fn word_hash(word: &str) -> u32 {
    word.bytes().fold(FNV_BASIS, fnv_step)
}

impl<'a> WordVectors<'a> {
    /// `None` when `bytes` is not a table of this crate's layout.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() < HEADER || &bytes[..4] != b"WVEC" || u32_at(bytes, 4) != VERSION {
            return None;
        }
        let (dims, rows, slots) = (u32_at(bytes, 8), u32_at(bytes, 12), u32_at(bytes, 16));
        let slot_bytes = slots as usize * 4;
        if dims as usize != DIMS
            || slots == 0
            || bytes.len() != HEADER + slot_bytes + rows as usize * ROW
        {
            return None;
        }
        let (slot_part, rows_part) = bytes[HEADER..].split_at(slot_bytes);
        Some(Self {
            slots: slot_part,
            rows: rows_part,
            slot_count: slots,
        })
    }

    /// The table built into the crate.
    pub fn default_table() -> Self {
        Self::new(DEFAULT_TABLE).expect("data/intent/words.bin has the table's layout")
    }

    /// The word's weight (0 to 1, low for frequent words) and its vector,
    /// for a lower-cased word.
    pub fn get(&self, word: &str) -> Option<WordVector<'a>> {
        self.get_hashed(word_hash(word))
    }

    /// The entry of the word whose [`word_hash`] is `hash` (the table keys
    /// words by their hash alone).
    fn get_hashed(&self, hash: u32) -> Option<WordVector<'a>> {
        let mut slot = hash % self.slot_count;
        loop {
            let entry = u32_at(self.slots, slot as usize * 4);
            if entry == 0 {
                return None;
            }
            let row = &self.rows[(entry as usize - 1) * ROW..][..ROW];
            if u32_at(row, 0) == hash {
                return Some(WordVector {
                    weight: f32::from(row[4]) / 255.0,
                    concepts: [
                        u16::from_le_bytes([row[5], row[6]]),
                        u16::from_le_bytes([row[7], row[8]]),
                    ],
                    tech: f32::from(row[9] as i8) / 254.0,
                    components: &row[11..],
                });
            }
            slot = (slot + 1) % self.slot_count;
        }
    }

    /// The entries that make up a lower-cased word, into `out` (cleared):
    /// the word's own when the table has it, otherwise the fewest table
    /// words (of three letters or more, at most [`MAX_PIECES`]) that spell it
    /// end to end, a German linking "s" allowed between them: "scanviewmodel"
    /// is "scan" "view" "model", "Bewerbungsschreiben" "bewerbung"
    /// "schreiben". Nothing when no such split exists.
    pub fn pieces(&self, word: &str) -> Pieces<'a> {
        let mut out = Pieces::default();
        if let Some(entry) = self.get(word) {
            out.push(entry);
            return out;
        }
        let bytes = word.as_bytes();
        let n = bytes.len();
        if !(2 * MIN_PIECE..=MAX_SPLIT).contains(&n) {
            return out;
        }
        // split[i]: the fewest pieces that spell word[..i], where the last
        // of them starts, and whether a linking "s" precedes it. Filled
        // forward: each reachable start extends one hash byte by byte, so a
        // word costs O(n²) cheap steps, and the table is asked only about
        // substrings that could continue a split.
        let mut split = [(u8::MAX, 0u8, false); MAX_SPLIT + 1];
        split[0].0 = 0;
        for start in 0..=n - MIN_PIECE {
            let (before, link) = match split[start].0 {
                u8::MAX if start > 1 && bytes[start - 1] == b's' => (split[start - 1].0, true),
                count => (count, false),
            };
            if before as usize >= MAX_PIECES {
                continue;
            }
            let mut hash = FNV_BASIS;
            for end in start + 1..=n {
                hash = fnv_step(hash, bytes[end - 1]);
                if end - start >= MIN_PIECE
                    && before + 1 < split[end].0
                    && word.is_char_boundary(start)
                    && word.is_char_boundary(end)
                    && self.get_hashed(hash).is_some()
                {
                    split[end] = (before + 1, start as u8, link);
                }
            }
        }
        if split[n].0 == u8::MAX {
            return out;
        }
        let mut end = n;
        while end > 0 {
            let (_, start, link) = split[end];
            let start = start as usize;
            out.push(self.get(&word[start..end]).expect("a piece found above"));
            end = start - usize::from(link);
        }
        out.entries[..out.len].reverse();
        out
    }

    /// The weighted mean of the vectors of `words` (lower-cased, split into
    /// [`WordVectors::pieces`]), unit length, and the share of the words the
    /// table knows. Zero when it knows none.
    pub fn mean<'w>(&self, words: impl Iterator<Item = &'w str>) -> ([f32; DIMS], f32) {
        let mut mean = Mean::default();
        for word in words {
            mean.add_word(&self.pieces(word));
        }
        mean.finish()
    }
}

/// The table entries that make up one word: its own, or the pieces of a
/// split (no allocation).
#[derive(Clone, Copy, Default)]
pub struct Pieces<'a> {
    entries: [Option<WordVector<'a>>; MAX_PIECES],
    len: usize,
}

impl<'a> Pieces<'a> {
    fn push(&mut self, entry: WordVector<'a>) {
        self.entries[self.len] = Some(entry);
        self.len += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = WordVector<'a>> + '_ {
        self.entries[..self.len].iter().flatten().copied()
    }
}

/// Shortest piece of a split word, longest word split, most pieces.
const MIN_PIECE: usize = 3;
const MAX_SPLIT: usize = 30;
const MAX_PIECES: usize = 4;

/// The weighted mean of word vectors, built one word at a time (so a caller
/// that looks each word up for other reasons looks it up once).
pub struct Mean {
    sum: [f32; DIMS],
    known: u32,
    total: u32,
}

impl Default for Mean {
    fn default() -> Self {
        Self {
            sum: [0.0; DIMS],
            known: 0,
            total: 0,
        }
    }
}

impl Mean {
    /// One word as its [`WordVectors::pieces`] (none when unknown).
    pub fn add_word(&mut self, pieces: &Pieces<'_>) {
        self.total += 1;
        if !pieces.is_empty() {
            self.known += 1;
        }
        for piece in pieces.iter() {
            piece.add_to(&mut self.sum, piece.weight.max(0.02));
        }
    }

    /// The unit-length mean (zero when no word was known) and the share of
    /// the words the table knew.
    pub fn finish(mut self) -> ([f32; DIMS], f32) {
        normalise(&mut self.sum);
        (self.sum, self.known as f32 / self.total.max(1) as f32)
    }
}

/// One word's entry in the table.
#[derive(Clone, Copy)]
pub struct WordVector<'a> {
    /// 0 to 1: low for frequent words ("the", "der", "le").
    pub weight: f32,
    /// The word's cluster among 256 and among 2048 clusters of all the
    /// words' vectors: words of one meaning in any language share them.
    pub concepts: [u16; 2],
    /// Where the word lies between private life (negative: family, health,
    /// food, love, home, money, leisure, in four languages) and technical
    /// work (positive: code, database, deploy…).
    pub tech: f32,
    /// Quantised components (i8 stored as bytes); the table's scale is
    /// irrelevant because every use normalises.
    components: &'a [u8],
}

impl WordVector<'_> {
    pub fn add_to(&self, sum: &mut [f32; DIMS], weight: f32) {
        for (s, c) in sum.iter_mut().zip(self.components) {
            *s += weight * f32::from(*c as i8);
        }
    }

    /// Unit-length copy of the leading [`CLOSE_DIMS`] components.
    pub fn unit_leading(&self) -> [f32; CLOSE_DIMS] {
        let mut v = [0.0; CLOSE_DIMS];
        for (s, c) in v.iter_mut().zip(self.components) {
            *s = f32::from(*c as i8);
        }
        normalise(&mut v);
        v
    }
}

/// Scales `v` to unit length (leaves zero alone).
pub fn normalise<const N: usize>(v: &mut [f32; N]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

pub fn dot<const N: usize>(a: &[f32; N], b: &[f32; N]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_words_are_spelled_with_known_ones() {
        let table = WordVectors::default_table();
        let count = |word: &str| table.pieces(word).iter().count();
        assert_eq!(count("view"), 1, "a known word is itself");
        assert!(table.get("scanviewmodel").is_none());
        assert_eq!(count("scanviewmodel"), 3, "scan view model");
        assert!(table.get("bewerbungsschreiben").is_none());
        assert_eq!(count("bewerbungsschreiben"), 2, "a linking s");
        assert_eq!(count("xqzvkw"), 0, "no split, no vector");
        // The pieces' vectors are those of the words.
        let mut whole = Mean::default();
        whole.add_word(&table.pieces("scanviewmodel"));
        let (split, _) = whole.finish();
        let (words, _) = table.mean(["scan", "view", "model"].into_iter());
        assert!(dot(&split, &words) > 0.999);
    }
}
