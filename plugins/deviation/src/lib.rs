//! Default deviation stage: a per-user score that rises with off-task prompts
//! (+0.1 slight, +1 major), decays with a half-life, and rises further on
//! usage-pattern signals (+0.5 for a burst: a third major deviation within
//! ten minutes; +0.25 for a volume spike). Thresholds pick the action.
//!
//! Forgiving by design:
//! - an off-task prompt counts in proportion to the classifier's confidence:
//!   a sure call (confidence 0.9 or more) counts fully, an uncertain one
//!   (0.6) about a tenth;
//! - and by the user's recent record: while at most one in ten of the last
//!   twenty calls was a major deviation (or there were no calls at all), an
//!   off-task one counts half (an occasional slip is forgiven, a run of
//!   them is not);
//! - the action rises at most one step per call (none → warn → flag →
//!   block), two during a burst, so a user is warned before being blocked;
//!   an on-task prompt blocks only a user already flagged (the host hands
//!   a repeated prompt to this stage as on-task: it counts once);
//! - `shadow = true` scores and flags but never blocks (a tenant trying the
//!   detector on its own users first).
//!
//! Config (all optional): `half_life_minutes` (20), `warn_at` (1.0),
//! `flag_at` (1.5), `block_at` (2.0), `slight_weight` (0.1), `major_weight`
//! (1.0), `shadow` (false).

wit_bindgen::generate!({ path: "../../wit", world: "warden:policy/deviation-plugin@0.1.0" });

use exports::warden::policy::deviation::{DeviationOutcome, DeviationRequest, Guest};
use warden::policy::types::{Action, Drift, HistoryEntry};
use warden::policy::{clock, config, kv};

fn setting(key: &str, default: f32) -> f32 {
    config::get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The tenant's settings, read once per instance: an instance never outlives
/// its policy (a new policy builds new instances), and each `config::get` is
/// a host call.
struct Settings {
    half_life_ms: f32,
    slight_weight: f32,
    major_weight: f32,
    warn_at: f32,
    flag_at: f32,
    block_at: f32,
    shadow: bool,
}

fn settings() -> &'static Settings {
    static SETTINGS: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();
    SETTINGS.get_or_init(|| Settings {
        half_life_ms: setting("half_life_minutes", 20.0).max(0.01) * 60_000.0,
        slight_weight: setting("slight_weight", 0.1),
        major_weight: setting("major_weight", 1.0),
        warn_at: setting("warn_at", 1.0),
        flag_at: setting("flag_at", 1.5),
        block_at: setting("block_at", 2.0),
        shadow: config::get("shadow").is_some_and(|v| v == "true"),
    })
}

/// How much of a deviation's weight counts, from the classifier's
/// confidence in it: all of it from 0.9 on, falling to a tenth at 0.585.
fn certainty(confidence: f32) -> f32 {
    ((confidence - 0.55) / 0.35).clamp(0.1, 1.0)
}

/// Added for a burst: three or more major deviations in ten minutes is how
/// misuse looks, and almost never how honest work does. Slight ones do not
/// count: a learner asking three questions about the craft is no burst.
const BURST: f32 = 0.5;
const BURST_WINDOW_MS: u64 = 10 * 60 * 1000;

/// Major deviations among the earlier calls since `since_ms`.
fn majors_since(history: &[HistoryEntry], since_ms: u64) -> usize {
    history
        .iter()
        .filter(|h| h.at_ms >= since_ms && h.drift == Drift::Major)
        .count()
}

/// Recent calls a user's track record is read from.
const TRACK_RECORD: usize = 20;

/// A user whose recent work is overwhelmingly on-task gets the benefit of
/// the doubt: an off-task call counts for half while at most one in ten of
/// the last twenty calls was a major deviation, or when there were none (a
/// new user's first prompt taken for off-task). An honest user meets the
/// classifier's occasional mistake a few times a day, never in a row;
/// misuse is a run of them, and from its second call on counts fully.
fn track_record(history: &[HistoryEntry]) -> f32 {
    let recent = &history[history.len().saturating_sub(TRACK_RECORD)..];
    let majors = recent.iter().filter(|h| h.drift == Drift::Major).count();
    if majors * 10 > recent.len() {
        1.0
    } else {
        0.5
    }
}

/// Where a user's last action is kept.
fn level_key(user: &str) -> String {
    format!("level/{user}")
}

/// The level of the user's last action (0 when none is kept).
fn last_level(user: &str) -> usize {
    kv::get(&level_key(user))
        .and_then(|v| v.first().copied())
        .map_or(0, usize::from)
}

fn remember_level(user: &str, level: usize) {
    if level == 0 {
        kv::delete(&level_key(user));
    } else {
        kv::set(&level_key(user), &[level as u8]);
    }
}

/// 0 none, 1 warn, 2 flag, 3 block.
fn level(score: f32, settings: &Settings) -> usize {
    [settings.warn_at, settings.flag_at, settings.block_at]
        .iter()
        .filter(|at| score >= **at)
        .count()
}

struct Deviation;

impl Guest for Deviation {
    fn score(request: DeviationRequest) -> DeviationOutcome {
        let now = clock::now_ms();
        let settings = settings();
        let half_life_ms = settings.half_life_ms;
        let elapsed = now.saturating_sub(request.score_updated_at_ms) as f32;
        let decayed = if request.score_updated_at_ms == 0 {
            request.score
        } else {
            request.score * 0.5f32.powf(elapsed / half_life_ms)
        };

        let mut reasons: Vec<String> = Vec::new();
        let certainty = certainty(request.current.confidence) * track_record(&request.history);
        let mut increment = match request.current.drift {
            Drift::OnTask => 0.0,
            Drift::Slight => {
                reasons.push("prompt is only loosely related to the task".into());
                settings.slight_weight * certainty
            }
            Drift::Major => {
                reasons.push(format!(
                    "prompt is unrelated to the task (confidence {:.2})",
                    request.current.confidence
                ));
                settings.major_weight * certainty
            }
        };
        let stats = &request.stats;
        let earlier_majors = majors_since(&request.history, now.saturating_sub(BURST_WINDOW_MS));
        let burst = request.current.drift == Drift::Major && earlier_majors >= 2;
        if request.current.drift != Drift::OnTask {
            if burst {
                increment += BURST;
                reasons.push(format!(
                    "burst of {} unrelated prompts in ten minutes",
                    earlier_majors + 1
                ));
            }
            if stats.requests_last_hour >= 30
                && stats.requests_last_hour as f32 > 3.0 * stats.baseline_requests_per_hour.max(1.0)
            {
                increment += 0.25;
                reasons.push(format!(
                    "volume spike: {} requests in the last hour against a baseline of {:.1}",
                    stats.requests_last_hour, stats.baseline_requests_per_hour
                ));
            }
            let last = request.history.last();
            if last.is_some_and(|h| h.drift == Drift::OnTask && h.same_task)
                && request.current.drift == Drift::Major
            {
                reasons.push("abrupt change of topic".into());
            }
        }

        // Scores are kept to two decimals, so a few seconds of decay do not
        // keep two quick major deviations (1 + 1) under a threshold of 2.
        let score = ((decayed + increment) * 100.0).round() / 100.0;
        // One step above the last action at most, so every user passes
        // through warn and flag before a block. The last action is kept in
        // this plugin's key-value store; it counts only while the score
        // still stands at its level (re-enabling resets the score).
        // Most calls score under every threshold and never touch the store.
        let user = &request.identity.user_id;
        let mut action = level(score, settings);
        if action > 0 {
            let before = last_level(user).min(level(decayed, settings));
            // A burst of unrelated prompts is misuse's own pattern: it may
            // skip a step (warned straight to blocked).
            let steps = if burst { 2 } else { 1 };
            action = action.min(before + steps);
            // An on-task prompt blocks only a user already flagged whose
            // score still stands at `block_at` (misses of a misuser's
            // prompts must not shelter them); shadow mode never blocks.
            let on_task = request.current.drift == Drift::OnTask;
            if settings.shadow || (on_task && before < 2) {
                action = action.min(2);
            }
            if action != before {
                remember_level(user, action);
            }
        }
        let action = [Action::None, Action::Warn, Action::Flag, Action::Block][action];
        if action != Action::None && reasons.is_empty() {
            reasons.push("recent prompts strayed from the task".into());
        }
        DeviationOutcome {
            score_delta: score - request.score,
            action,
            reason: reasons.join("; "),
        }
    }
}

export!(Deviation);
