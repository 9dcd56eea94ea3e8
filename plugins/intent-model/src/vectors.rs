//! The static multilingual word-vector table (`data/intent/words.bin`, built
//! by `scripts/build-word-vectors.py` from multilingual-e5-small), read in
//! place: no parsing and no copy when an instance starts, so the table lives
//! once in the component's memory image, shared copy-on-write by every
//! instance of every tenant.

/// Dimensions of a word vector.
pub const DIMS: usize = 64;

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

/// FNV-1a of the word's bytes, as the build script computes it.
pub fn word_hash(word: &str) -> u32 {
    word.bytes().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
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
        let hash = word_hash(word);
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

    /// The weighted mean of the vectors of `words` (lower-cased), unit
    /// length, and the share of the words the table knows. Zero when it
    /// knows none.
    pub fn mean<'w>(&self, words: impl Iterator<Item = &'w str>) -> ([f32; DIMS], f32) {
        let mut mean = Mean::default();
        for word in words {
            mean.add(self.get(word));
        }
        mean.finish()
    }
}

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
    /// One word, and its entry if the table knows it.
    pub fn add(&mut self, entry: Option<WordVector<'_>>) {
        self.total += 1;
        if let Some(vector) = entry {
            self.known += 1;
            vector.add_to(&mut self.sum, vector.weight.max(0.02));
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

    /// Unit-length copy.
    pub fn unit(&self) -> [f32; DIMS] {
        let mut v = [0.0; DIMS];
        self.add_to(&mut v, 1.0);
        normalise(&mut v);
        v
    }
}

/// Scales `v` to unit length (leaves zero alone).
pub fn normalise(v: &mut [f32; DIMS]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

pub fn dot(a: &[f32; DIMS], b: &[f32; DIMS]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
