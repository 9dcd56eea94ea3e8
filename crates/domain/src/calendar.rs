//! Quota windows in a tenant's local time.
//!
//! Daily and monthly quotas reset at the tenant's local midnight (weeks, shown
//! to users, start on Monday). A [`Calendar`] turns a UTC instant into the
//! windows that contain it: a day, week and month number (counted in local
//! dates since 1970-01-01, so they only ever grow) and the UTC instants where
//! the day and month end. Time zones come from the IANA database bundled with
//! jiff, so DST days of 23 or 25 hours end at the right instant.

use arc_swap::ArcSwap;
use jiff::tz::TimeZone;
use jiff::Timestamp;

const DAY_MS: i64 = 86_400_000;

/// The windows containing one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Local dates since 1970-01-01.
    pub day: u64,
    /// Weeks (Monday to Sunday, local) since 1970.
    pub week: u64,
    /// Months since 1970-01.
    pub month: u64,
    /// UTC milliseconds where this local day starts and the next one does.
    pub day_start_ms: u64,
    pub day_end_ms: u64,
    /// UTC milliseconds where the next local month starts.
    pub month_end_ms: u64,
}

impl Windows {
    fn contains(&self, now_ms: u64) -> bool {
        (self.day_start_ms..self.day_end_ms).contains(&now_ms)
    }
}

/// An instant and the windows that contain it in some tenant's calendar.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    pub now_ms: u64,
    pub windows: Windows,
}

/// A tenant's time zone, with the current day's windows cached: the request
/// path reads them lock-free and recomputes once per local day.
pub struct Calendar {
    zone: TimeZone,
    name: String,
    current: ArcSwap<Windows>,
}

impl Default for Calendar {
    fn default() -> Self {
        Self::utc()
    }
}

impl Calendar {
    /// A calendar for an IANA zone name such as `Europe/Berlin` or `UTC`.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        let zone = TimeZone::get(name).map_err(|e| {
            anyhow::anyhow!(
                "unknown time zone '{name}' (use an IANA name such as Europe/Berlin): {e}"
            )
        })?;
        let current = ArcSwap::from_pointee(compute(&zone, 0));
        Ok(Self {
            zone,
            name: name.to_string(),
            current,
        })
    }

    pub fn utc() -> Self {
        Self::parse("UTC").expect("UTC is always known")
    }

    /// One UTC calendar for callers without a tenant.
    pub fn utc_shared() -> &'static Self {
        static UTC: std::sync::OnceLock<Calendar> = std::sync::OnceLock::new();
        UTC.get_or_init(Self::utc)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local date of an instant, as `YYYY-MM-DD` (usage reports are per local day).
    pub fn date_of(&self, at_ms: u64) -> String {
        Timestamp::from_millisecond(at_ms as i64)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(self.zone.clone())
            .date()
            .to_string()
    }

    /// An instant as local `YYYY-MM-DD HH:MM:SS`, for people to read.
    pub fn local_time(&self, at_ms: u64) -> String {
        Timestamp::from_millisecond(at_ms as i64)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(self.zone.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    /// Local midnight starting `date` (`YYYY-MM-DD`), in UTC milliseconds.
    pub fn start_of(&self, date: &str) -> Option<u64> {
        let date: jiff::civil::Date = date.parse().ok()?;
        let ms = date
            .to_zoned(self.zone.clone())
            .ok()?
            .timestamp()
            .as_millisecond();
        u64::try_from(ms).ok()
    }

    /// The local dates of the `days` days ending today, oldest first.
    pub fn last_days(&self, now_ms: u64, days: u32) -> Vec<String> {
        let today = Timestamp::from_millisecond(now_ms as i64)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(self.zone.clone())
            .date();
        (0..days)
            .rev()
            .filter_map(|back| today.checked_sub(jiff::Span::new().days(back)).ok())
            .map(|d| d.to_string())
            .collect()
    }

    /// Today's and this month's first local dates, as `YYYY-MM-DD`.
    pub fn today_and_month_start(&self, now_ms: u64) -> (String, String) {
        let today = Timestamp::from_millisecond(now_ms as i64)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(self.zone.clone())
            .date();
        (today.to_string(), today.first_of_month().to_string())
    }

    /// `now_ms` (UTC milliseconds) with its windows.
    pub fn at(&self, now_ms: u64) -> Moment {
        Moment {
            now_ms,
            windows: self.windows(now_ms),
        }
    }

    /// The windows containing `now_ms` (UTC milliseconds).
    pub fn windows(&self, now_ms: u64) -> Windows {
        let cached = **self.current.load();
        if cached.contains(now_ms) {
            return cached;
        }
        let fresh = compute(&self.zone, now_ms);
        // Only move forward: a request stamped slightly earlier must not
        // swap yesterday back in for everyone else.
        if fresh.day_start_ms > cached.day_start_ms {
            self.current.store(std::sync::Arc::new(fresh));
        }
        fresh
    }
}

fn compute(zone: &TimeZone, now_ms: u64) -> Windows {
    let now = Timestamp::from_millisecond(now_ms as i64).unwrap_or(Timestamp::UNIX_EPOCH);
    let local = now.to_zoned(zone.clone());
    let date = local.date();
    let offset_ms = i64::from(zone.to_offset(now).seconds()) * 1000;
    let day = (now.as_millisecond() + offset_ms).div_euclid(DAY_MS).max(0) as u64;
    let start_of = |date: jiff::civil::Date| -> u64 {
        date.to_zoned(zone.clone())
            .map(|z| z.timestamp().as_millisecond().max(0) as u64)
            .unwrap_or(u64::MAX)
    };
    let tomorrow = date.tomorrow().map(start_of).unwrap_or(u64::MAX);
    let next_month = date
        .last_of_month()
        .tomorrow()
        .map(start_of)
        .unwrap_or(u64::MAX);
    Windows {
        day,
        // 1970-01-01 was a Thursday: shift by three days so weeks start on Monday.
        week: (day + 3) / 7,
        month: ((i64::from(date.year()) - 1970) * 12 + i64::from(date.month()) - 1).max(0) as u64,
        day_start_ms: start_of(date),
        day_end_ms: tomorrow,
        month_end_ms: next_month,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u64 {
        text.parse::<Timestamp>().unwrap().as_millisecond() as u64
    }

    #[test]
    fn utc_days_and_months_follow_the_calendar() {
        let utc = Calendar::utc();
        let feb28 = utc.windows(ms("2026-02-28T23:59:59Z"));
        let mar1 = utc.windows(ms("2026-03-01T00:00:00Z"));
        assert_eq!(feb28.day, 20512);
        assert_eq!(mar1.day, 20513);
        assert_eq!(feb28.month + 1, mar1.month);
        assert_eq!(feb28.day_end_ms, ms("2026-03-01T00:00:00Z"));
        assert_eq!(feb28.month_end_ms, ms("2026-03-01T00:00:00Z"));
        assert_eq!(utc.windows(ms("1970-02-01T00:00:00Z")).month, 1);
    }

    #[test]
    fn local_midnight_moves_the_day_boundary() {
        let tokyo = Calendar::parse("Asia/Tokyo").unwrap();
        // 14:59 UTC is 23:59 in Tokyo; 15:00 UTC is the next local day.
        let before = tokyo.windows(ms("2026-11-22T14:59:59Z"));
        let after = tokyo.windows(ms("2026-11-22T15:00:00Z"));
        assert_eq!(before.day + 1, after.day);
        assert_eq!(before.day_end_ms, ms("2026-11-22T15:00:00Z"));
    }

    #[test]
    fn dst_days_have_their_true_length() {
        let berlin = Calendar::parse("Europe/Berlin").unwrap();
        // 2026-03-29: clocks jump 02:00 → 03:00, the local day lasts 23 hours.
        let spring = berlin.windows(ms("2026-03-29T12:00:00Z"));
        assert_eq!(spring.day_end_ms - spring.day_start_ms, 23 * 3_600_000);
        assert_eq!(spring.month_end_ms, ms("2026-03-31T22:00:00Z"));
    }

    #[test]
    fn weeks_start_on_monday() {
        let utc = Calendar::utc();
        let sunday = utc.windows(ms("2026-11-22T12:00:00Z"));
        let monday = utc.windows(ms("2026-11-23T00:00:00Z"));
        assert_eq!(sunday.week + 1, monday.week);
    }

    #[test]
    fn unknown_zones_are_refused() {
        assert!(Calendar::parse("Mars/Olympus").is_err());
    }
}
