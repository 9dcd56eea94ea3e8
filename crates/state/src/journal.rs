//! The request journal: what makes an answered request survive `kill -9`.
//!
//! sled keeps recent writes in its own buffers until it flushes (an fsync,
//! milliseconds), so the state writer's batches alone could lose the last
//! few hundred milliseconds of records if the process is killed. Before a
//! response is finished, its record and the user's counters are appended to
//! `journal-<n>.log` with one `write()`: once in the kernel's page cache they
//! survive the process (not a power cut). About once a second the writer
//! starts a new journal file, writes everything up to that point into sled,
//! flushes sled, and deletes the old file. At start-up, leftover journal files
//! are replayed into sled (records are keyed, counters are absolute: replay
//! is idempotent) and removed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::activity::{Activity, Counters};
use super::model::RequestRecord;

#[derive(Serialize, Deserialize)]
pub struct JournalEntry {
    pub record: RequestRecord,
    /// The user's counters after the call.
    pub counters: Option<Counters>,
    /// Its pools' (the user's groups', the tenant plan's), by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<(String, Counters)>,
}

pub struct Journal {
    dir: PathBuf,
    file: File,
    number: u64,
}

fn path_of(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("journal-{number:020}.log"))
}

/// Journal files in `dir`, oldest first.
pub(super) fn existing(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let number = path.file_name().and_then(|n| n.to_str()).and_then(|n| {
            n.strip_prefix("journal-")?
                .strip_suffix(".log")?
                .parse()
                .ok()
        });
        if let Some(number) = number {
            files.push((number, path));
        }
    }
    files.sort();
    Ok(files)
}

impl Journal {
    /// Replays leftover journals into `apply` (record by record) and restores
    /// counters into `activity`; returns the journal to append to and the
    /// files to delete once their contents are flushed into sled.
    pub fn recover(
        dir: &Path,
        activity: &Activity,
        mut apply: impl FnMut(RequestRecord),
    ) -> anyhow::Result<(Self, Vec<PathBuf>)> {
        let files = existing(dir)?;
        let mut replayed = 0usize;
        for (_, path) in &files {
            for line in BufReader::new(File::open(path)?).lines() {
                // A torn last line (killed mid-write) is skipped: its
                // response was never finished.
                let Ok(entry) = serde_json::from_str::<JournalEntry>(&line?) else {
                    continue;
                };
                let tenant = &entry.record.tenant_id;
                if let Some(counters) = &entry.counters {
                    activity.restore(tenant, &entry.record.user_id, counters);
                }
                for (pool, counters) in &entry.pools {
                    activity.restore(tenant, pool, counters);
                }
                apply(entry.record);
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::info!(records = replayed, "replayed the request journal");
        }
        let number = files.last().map_or(0, |(n, _)| n + 1);
        let journal = Self::create(dir, number)?;
        Ok((journal, files.into_iter().map(|(_, p)| p).collect()))
    }

    fn create(dir: &Path, number: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path_of(dir, number))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            number,
        })
    }

    /// Appends one entry with a single `write()`.
    pub fn append(&mut self, entry: &JournalEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// Starts a new file; returns the old one's path, to delete once
    /// everything it holds is flushed into sled.
    pub fn rotate(&mut self) -> std::io::Result<PathBuf> {
        let old = path_of(&self.dir, self.number);
        *self = Self::create(&self.dir, self.number + 1)?;
        Ok(old)
    }
}
