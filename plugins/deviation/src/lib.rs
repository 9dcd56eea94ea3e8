//! Default deviation stage: a per-user score that rises with off-task prompts
//! (+0.1 slight, +1 major), decays with a half-life, and rises further on
//! usage-pattern signals. Thresholds pick the action.
//!
//! Config (all optional): `half_life_minutes` (60), `warn_at` (1.0),
//! `flag_at` (1.5), `block_at` (2.0), `slight_weight` (0.1), `major_weight` (1.0).

wit_bindgen::generate!({ path: "../../wit", world: "warden:policy/deviation-plugin@0.1.0" });

use exports::warden::policy::deviation::{DeviationOutcome, DeviationRequest, Guest};
use warden::policy::types::{Action, Drift};
use warden::policy::{clock, config};

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
}

fn settings() -> &'static Settings {
    static SETTINGS: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();
    SETTINGS.get_or_init(|| Settings {
        half_life_ms: setting("half_life_minutes", 60.0).max(0.01) * 60_000.0,
        slight_weight: setting("slight_weight", 0.1),
        major_weight: setting("major_weight", 1.0),
        warn_at: setting("warn_at", 1.0),
        flag_at: setting("flag_at", 1.5),
        block_at: setting("block_at", 2.0),
    })
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
        let mut increment = match request.current.drift {
            Drift::OnTask => 0.0,
            Drift::Slight => {
                reasons.push("prompt is only loosely related to the task".into());
                settings.slight_weight
            }
            Drift::Major => {
                reasons.push("prompt is unrelated to the task".into());
                settings.major_weight
            }
        };
        let stats = &request.stats;
        if request.current.drift != Drift::OnTask {
            if stats.unrelated_last_ten_minutes >= 3 {
                increment += 0.25;
                reasons.push(format!(
                    "burst of {} unrelated prompts in ten minutes",
                    stats.unrelated_last_ten_minutes
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
        let action = if score >= settings.block_at {
            Action::Block
        } else if score >= settings.flag_at {
            Action::Flag
        } else if score >= settings.warn_at {
            Action::Warn
        } else {
            Action::None
        };
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
