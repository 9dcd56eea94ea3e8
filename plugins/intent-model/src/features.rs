//! From a prompt and its task to hashed feature ids.

use crate::vectors::{dot, Mean, WordVectors, CLOSE_DIMS, DIMS};
use crate::BUCKETS;

/// Words too common to say anything about a task.
const STOP: &[&str] = &[
    "the", "and", "for", "with", "our", "this", "that", "from", "into", "its", "their", "them",
    "are", "was", "were", "has", "have", "how", "what", "when", "which", "who", "why", "can",
    "you", "your", "all", "any", "not", "but", "use", "using", "make", "write", "add", "get",
    "new", "one", "two", "each", "per", "a", "an", "of", "to", "in", "on", "is", "it", "be", "by",
    "or", "as", "at", "do", "if", "so", "we", "me", "my", "i",
];

/// Crude English stemming: enough that "invoices", "invoiced" and
/// "invoicing" meet "invoice" at the same stem.
fn stem(word: &str) -> &str {
    let cut = |suffix: &str, min: usize| word.strip_suffix(suffix).filter(|rest| rest.len() >= min);
    cut("ing", 3)
        .or_else(|| cut("ies", 3))
        .or_else(|| cut("es", 4))
        .or_else(|| cut("ed", 3))
        .or_else(|| cut("ly", 4))
        .or_else(|| {
            word.strip_suffix('s')
                .filter(|r| r.len() >= 3 && !r.ends_with('s'))
        })
        .or_else(|| cut("e", 3))
        .unwrap_or(word)
}

/// Lower-cased stems of the words of `text`, in order.
fn stems(text: &str, out: &mut Vec<String>) {
    let mut words = Words::default();
    words.read(text);
    out.extend(words.iter().map(str::to_string));
}

/// The words of a prompt in one reused buffer, lower-cased and as stems:
/// no allocation per word.
#[derive(Default)]
pub struct Words {
    text: String,
    spans: Vec<(u32, u32)>,
    /// Lower-cased words, as the word-vector table keys them.
    raw: String,
    raw_spans: Vec<(u32, u32)>,
    lower: String,
}

impl Words {
    pub(crate) fn read(&mut self, text: &str) {
        self.text.clear();
        self.spans.clear();
        self.raw.clear();
        self.raw_spans.clear();
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() || word.len() > 30 {
                continue;
            }
            self.lower.clear();
            self.lower.extend(word.chars().flat_map(char::to_lowercase));
            let start = self.text.len() as u32;
            self.text.push_str(stem(&self.lower));
            self.spans.push((start, self.text.len() as u32));
            let start = self.raw.len() as u32;
            self.raw.push_str(&self.lower);
            self.raw_spans.push((start, self.raw.len() as u32));
        }
    }

    fn get(&self, i: usize) -> &str {
        let (start, end) = self.spans[i];
        &self.text[start as usize..end as usize]
    }

    /// Stems, in order.
    fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.spans.len()).map(|i| self.get(i))
    }

    /// Lower-cased words, in order.
    pub(crate) fn raw(&self) -> impl Iterator<Item = &str> {
        self.raw_spans
            .iter()
            .map(|&(start, end)| &self.raw[start as usize..end as usize])
    }
}

/// The sorted, deduplicated content stems of the words last read.
pub fn content_stems(words: &Words) -> Vec<String> {
    let mut stems: Vec<String> = words
        .iter()
        .filter(|w| !is_stop(w))
        .map(str::to_string)
        .collect();
    stems.sort();
    stems.dedup();
    stems
}

fn is_stop(stem: &str) -> bool {
    STOP.contains(&stem) || stem.len() < 2
}

/// The task's vocabulary, computed once per task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskTerms {
    /// Sorted, deduplicated stems of the title, description and keywords.
    stems: Vec<String>,
    /// Sorted first five letters of the stems that have five or more.
    prefixes: Vec<[u8; 5]>,
}

impl TaskTerms {
    pub fn new(title: &str, description: &str, keywords: &[String]) -> Self {
        let mut all = Vec::new();
        stems(title, &mut all);
        stems(description, &mut all);
        for keyword in keywords {
            stems(keyword, &mut all);
        }
        all.retain(|s| !is_stop(s));
        all.sort();
        all.dedup();
        let mut prefixes: Vec<[u8; 5]> = all.iter().filter_map(|s| prefix5(s)).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        Self {
            stems: all,
            prefixes,
        }
    }

    /// A stem of the task, or one that shares its first five letters with
    /// one (so "billing" meets "bill" only through its stem, "bill").
    fn contains(&self, stem: &str) -> bool {
        if self
            .stems
            .binary_search_by(|s| s.as_str().cmp(stem))
            .is_ok()
        {
            return true;
        }
        prefix5(stem).is_some_and(|p| self.prefixes.binary_search(&p).is_ok())
    }
}

fn prefix5(stem: &str) -> Option<[u8; 5]> {
    stem.as_bytes().get(..5)?.try_into().ok()
}

/// FNV-1a over a namespace byte and raw bytes, folded into `BUCKETS`.
fn hash_bytes(namespace: u8, bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in core::iter::once(namespace).chain(bytes.iter().copied()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % BUCKETS as u32
}

/// FNV-1a over a namespace byte and the parts, folded into `BUCKETS`.
fn hash(namespace: u8, parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: u8| {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    };
    eat(namespace);
    for part in parts {
        part.bytes().for_each(&mut eat);
        eat(0);
    }
    h % BUCKETS as u32
}

/// A task as the classifier sees it, computed once per task: its words,
/// its mean vector, and the vectors of its content words.
#[derive(Clone)]
pub struct TaskProfile {
    terms: TaskTerms,
    vector: [f32; DIMS],
    word_vectors: Vec<[f32; CLOSE_DIMS]>,
}

impl Default for TaskProfile {
    fn default() -> Self {
        Self {
            terms: TaskTerms::default(),
            vector: [0.0; DIMS],
            word_vectors: Vec::new(),
        }
    }
}

/// Content words of a task compared one by one with a prompt's words.
const MAX_TASK_WORDS: usize = 48;

impl TaskProfile {
    pub fn new(vectors: &WordVectors, title: &str, description: &str, keywords: &[String]) -> Self {
        let mut words = Words::default();
        let mut text = String::with_capacity(title.len() + description.len() + 64);
        text.push_str(title);
        text.push(' ');
        text.push_str(description);
        for keyword in keywords {
            text.push(' ');
            text.push_str(keyword);
        }
        words.read(&text);
        let (vector, _) = vectors.mean(words.raw());
        let mut word_vectors: Vec<[f32; CLOSE_DIMS]> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for word in words.raw() {
            if is_stop(word) || seen.contains(&word) || word_vectors.len() >= MAX_TASK_WORDS {
                continue;
            }
            seen.push(word);
            word_vectors.extend(vectors.pieces(word).iter().map(|v| v.unit_leading()));
        }
        Self {
            terms: TaskTerms::new(title, description, keywords),
            vector,
            word_vectors,
        }
    }
}

/// Dense inputs: the prompt's mean vector, its product with the task's,
/// then the scalars below.
pub const DENSE: usize = 2 * DIMS + SCALARS;
const SCALARS: usize = 9;

/// One prompt's inputs to the model: hashed sparse features (value 1) and
/// dense values, whose weights follow the `BUCKETS` sparse rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub sparse: Vec<u32>,
    pub dense: [f32; DENSE],
}

impl Features {
    /// The prompt's mean word vector (unit length).
    pub fn prompt_vector(&self) -> [f32; DIMS] {
        let mut v = [0.0; DIMS];
        for (out, x) in v.iter_mut().zip(&self.dense[..DIMS]) {
            *out = x / PROMPT_SCALE;
        }
        v
    }
}

/// Scales of the dense parts, so they learn at the pace of the sparse ones.
const PROMPT_SCALE: f32 = 2.0;
const PRODUCT_SCALE: f32 = 8.0;

impl Default for Features {
    fn default() -> Self {
        Self {
            sparse: Vec::new(),
            dense: [0.0; DENSE],
        }
    }
}

/// Buckets of a similarity in [-1, 1], as a feature name.
fn bin(value: f32) -> &'static str {
    const NAMES: [&str; 8] = ["<0", "0", "1", "2", "3", "4", "5", "6+"];
    if value < 0.0 {
        NAMES[0]
    } else {
        NAMES[((value * 10.0) as usize + 1).min(7)]
    }
}

/// First person singular in English, German, French and Spanish: personal
/// requests speak of "my son", "meine Wohnung", "mon CV", "mi novia".
const SINGULAR: &[&str] = &[
    "i", "me", "my", "mine", "myself", "im", "ich", "mich", "mir", "mein", "meine", "meinen",
    "meinem", "meiner", "meines", "je", "j", "moi", "mon", "ma", "mes", "yo", "mí", "mi", "mis",
    "conmigo",
];
/// First person plural: work speaks of "our API", "unsere Kunden", "notre
/// site", "nuestro equipo".
const PLURAL: &[&str] = &[
    "we", "us", "our", "ours", "wir", "uns", "unser", "unsere", "unseren", "unserem", "unserer",
    "nous", "notre", "nos", "nosotros", "nuestro", "nuestra", "nuestros", "nuestras",
];

/// Signs that a prompt carries code: identifiers with `_`, `::` or inner
/// capitals, brackets, operators, paths with line numbers.
fn code_signals(prompt: &str) -> (f32, bool) {
    let symbols = prompt
        .chars()
        .filter(|c| "(){}[];=<>`&*|\\/#$:'\"".contains(*c))
        .count();
    let identifier = prompt.split_whitespace().any(|token| {
        let t = token.trim_matches(|c: char| !c.is_alphanumeric());
        let inner_capital = t.chars().skip(1).any(char::is_uppercase)
            && t.chars().next().is_some_and(char::is_lowercase);
        t.contains('_') || t.contains("::") || inner_capital || t.ends_with("()")
    });
    let density = symbols as f32 / (prompt.chars().count().max(1) as f32);
    ((density * 10.0).min(1.0), identifier)
}

/// The prompt's features relative to `task`, written to `out` (sparse ids
/// sorted, without duplicates). `words` is a buffer reused between calls.
pub fn features(
    prompt: &str,
    task: &TaskProfile,
    vectors: &WordVectors,
    words: &mut Words,
    out: &mut Features,
) {
    out.sparse.clear();
    words.read(prompt);
    let sparse = &mut out.sparse;
    sparse.push(hash(b'0', &[])); // bias
    let mut content = 0;
    let mut overlap = 0;
    for word in words.iter().filter(|w| !is_stop(w)) {
        content += 1;
        overlap += usize::from(task.terms.contains(word));
    }
    let overlap_name = ["0", "1", "2", "3+"][overlap.min(3)];
    sparse.push(hash(b'o', &[overlap_name]));
    let length = match content {
        0..=4 => "short",
        5..=12 => "medium",
        _ => "long",
    };
    sparse.push(hash(b'l', &[length, overlap_name]));
    // Words alone: word pairs and "word without task overlap" memorised
    // the training prompts and generalised worse to new tasks.
    for word in words.iter() {
        sparse.push(hash(b'w', &[word]));
    }

    // Meaning: the prompt's mean vector, how close it is to the task's,
    // and how close its closest words come to the task's words.
    // One lookup per word: every word goes into the mean vector, content
    // words also into the closeness and concept features.
    let mut mean = Mean::default();
    let (mut best, mut sum, mut weights) = (0.0f32, 0.0f32, 0.0f32);
    // Technical against private-life meaning, over the content words.
    let (mut tech_sum, mut tech_max, mut tech_min) = (0.0f32, -1.0f32, 1.0f32);
    for word in words.raw() {
        // A word the table lacks counts as the table words that spell it.
        let pieces = vectors.pieces(word);
        mean.add_word(&pieces);
        if is_stop(word) {
            continue;
        }
        for entry in pieces.iter() {
            // Concepts: the word's meaning, whatever its language.
            let [coarse, fine] = entry.concepts.map(|c| c.to_le_bytes());
            let (coarse, fine) = (coarse.as_slice(), fine.as_slice());
            sparse.push(hash_bytes(b'k', coarse));
            sparse.push(hash_bytes(b'f', fine));
            if overlap == 0 {
                sparse.push(hash_bytes(b'K', coarse));
            }
            let v = entry.unit_leading();
            let closest = task
                .word_vectors
                .iter()
                .map(|t| dot(&v, t))
                .fold(0.0f32, f32::max);
            best = best.max(closest);
            let w = entry.weight.max(0.02);
            sum += w * closest;
            weights += w;
            tech_sum += w * entry.tech;
            tech_max = tech_max.max(entry.tech);
            tech_min = tech_min.min(entry.tech);
        }
    }
    let (vector, known) = mean.finish();
    let similarity = dot(&vector, &task.vector);
    let mean_closest = if weights > 0.0 { sum / weights } else { 0.0 };
    let tech = if weights > 0.0 {
        tech_sum / weights
    } else {
        0.0
    };
    let (tech_max, tech_min) = if weights > 0.0 {
        (tech_max, tech_min)
    } else {
        (0.0, 0.0)
    };
    let tech_name = ["life++", "life+", "life", "even", "tech", "tech+", "tech++"]
        [((tech + 0.35) / 0.1).clamp(0.0, 6.0) as usize];
    sparse.push(hash(b't', &[tech_name]));
    sparse.push(hash(b't', &[tech_name, overlap_name]));
    sparse.push(hash(b'T', &[bin(tech_max), bin(-tech_min)]));
    let (code, identifier) = code_signals(prompt);
    let singular = words.raw().filter(|w| SINGULAR.contains(w)).count();
    let plural = words.raw().filter(|w| PLURAL.contains(w)).count();
    let person = match (singular > 0, plural > 0) {
        (true, false) => "i",
        (false, true) => "we",
        (true, true) => "both",
        (false, false) => "none",
    };
    sparse.push(hash(b'p', &[person]));
    sparse.push(hash(b'p', &[person, overlap_name]));
    sparse.push(hash(b'c', &[bin(similarity)]));
    sparse.push(hash(b'm', &[bin(best)]));
    sparse.push(hash(b'n', &[bin(mean_closest), length]));
    if identifier {
        sparse.push(hash(b'i', &[]));
    }
    sparse.sort_unstable();
    sparse.dedup();

    let (head, scalars) = out.dense.split_at_mut(2 * DIMS);
    let (prompt_part, product_part) = head.split_at_mut(DIMS);
    for k in 0..DIMS {
        prompt_part[k] = PROMPT_SCALE * vector[k];
        product_part[k] = PRODUCT_SCALE * vector[k] * task.vector[k];
    }
    scalars.copy_from_slice(&[
        similarity,
        best,
        mean_closest,
        known,
        code,
        f32::from(u8::from(content <= 4)),
        2.0 * tech,
        tech_max,
        tech_min,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_meet() {
        for (a, b) in [
            ("invoices", "invoice"),
            ("invoicing", "invoice"),
            ("tests", "test"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} {b}");
        }
    }

    #[test]
    fn task_words_count_as_overlap() {
        let task = TaskTerms::new(
            "Invoice backend",
            "REST API for invoices",
            &["billing".into()],
        );
        assert!(task.contains(stem("invoices")));
        assert!(task.contains(stem("billing")));
        assert!(!task.contains(stem("recipe")));
    }

    #[test]
    fn features_are_deterministic_sorted_and_multilingual() {
        let vectors = WordVectors::default_table();
        let task = TaskProfile::new(
            &vectors,
            "Invoice backend",
            "REST API for invoices",
            &["billing".into()],
        );
        let mut scratch = Words::default();
        let (mut a, mut b) = (Features::default(), Features::default());
        features(
            "Add a tax line to the invoice",
            &task,
            &vectors,
            &mut scratch,
            &mut a,
        );
        features(
            "Add a tax line to the invoice",
            &task,
            &vectors,
            &mut scratch,
            &mut b,
        );
        assert_eq!(a, b, "deterministic");
        assert!(
            a.sparse.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        // One meaning in three languages lands close; another meaning does not.
        let mut vector = |text: &str| {
            let mut f = Features::default();
            features(text, &task, &vectors, &mut scratch, &mut f);
            f.prompt_vector()
        };
        let (en, de, fr) = (vector("recipe"), vector("Rezept"), vector("recette"));
        let far = vector("database");
        assert!(dot(&en, &de) > dot(&en, &far), "recipe ~ Rezept");
        assert!(dot(&en, &fr) > dot(&en, &far), "recipe ~ recette");
    }
}
