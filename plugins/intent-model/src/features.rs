//! From a prompt and its task to hashed feature ids.

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

/// The stems of a prompt in one reused buffer: no allocation per word.
#[derive(Default)]
pub struct Words {
    text: String,
    spans: Vec<(u32, u32)>,
    lower: String,
}

impl Words {
    fn read(&mut self, text: &str) {
        self.text.clear();
        self.spans.clear();
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() || word.len() > 30 {
                continue;
            }
            self.lower.clear();
            self.lower.extend(word.chars().flat_map(char::to_lowercase));
            let start = self.text.len() as u32;
            self.text.push_str(stem(&self.lower));
            self.spans.push((start, self.text.len() as u32));
        }
    }

    fn get(&self, i: usize) -> &str {
        let (start, end) = self.spans[i];
        &self.text[start as usize..end as usize]
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.spans.len()).map(|i| self.get(i))
    }
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

/// The prompt's features relative to `task`, appended to `out` (sorted,
/// without duplicates). `words` is a buffer reused between calls.
pub fn features(prompt: &str, task: &TaskTerms, words: &mut Words, out: &mut Vec<u32>) {
    words.read(prompt);
    out.push(hash(b'0', &[])); // bias
    let mut content = 0;
    let mut overlap = 0;
    for word in words.iter().filter(|w| !is_stop(w)) {
        content += 1;
        overlap += usize::from(task.contains(word));
    }
    let overlap_name = ["0", "1", "2", "3+"][overlap.min(3)];
    out.push(hash(b'o', &[overlap_name]));
    let length = match content {
        0..=4 => "short",
        5..=12 => "medium",
        _ => "long",
    };
    out.push(hash(b'l', &[length, overlap_name]));
    let mut previous: Option<&str> = None;
    for word in words.iter() {
        out.push(hash(b'w', &[word]));
        if overlap == 0 && !is_stop(word) {
            out.push(hash(b'z', &[word]));
        }
        if let Some(previous) = previous {
            out.push(hash(b'b', &[previous, word]));
        }
        previous = Some(word);
    }
    out.sort_unstable();
    out.dedup();
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
        let (mut scratch, mut a, mut b) = (Words::default(), Vec::new(), Vec::new());
        features("Add a tax line to the invoice", &task, &mut scratch, &mut a);
        features("Add a tax line to the invoice", &task, &mut scratch, &mut b);
        assert_eq!(a, b, "deterministic");
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
    }
}
