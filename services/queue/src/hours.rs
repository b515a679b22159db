//! A campaign's business hours: weekly opening intervals in an IANA time zone.

use chrono::{DateTime, Utc};
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use atenciones_proto::queue::v1 as pb;

use crate::error::Violations;

/// Stored as JSON on the campaign; validated before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    pub time_zone: String,
    pub intervals: Vec<Interval>,
}

/// Open from `open` to `close` minutes after local midnight on `day`
/// (1 = Monday … 7 = Sunday).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub day: u8,
    pub open: u16,
    pub close: u16,
}

impl BusinessHours {
    /// Reads and checks the hours a supervisor sent, reporting every bad field
    /// under `field`.
    pub fn from_proto(hours: pb::BusinessHours, field: &str, v: &mut Violations) -> Option<Self> {
        let zone_ok = TimeZone::get(&hours.time_zone).is_ok();
        v.check(
            zone_ok,
            &format!("{field}.time_zone"),
            "an IANA time zone such as America/Argentina/Buenos_Aires",
        );
        v.check(
            !hours.intervals.is_empty(),
            &format!("{field}.intervals"),
            "at least one opening interval",
        );
        let mut intervals = Vec::with_capacity(hours.intervals.len());
        for (i, interval) in hours.intervals.iter().enumerate() {
            let at = format!("{field}.intervals[{i}]");
            let day = weekday_number(interval.day());
            let open = minutes(&interval.open);
            let close = minutes(&interval.close);
            v.check(day.is_some(), &format!("{at}.day"), "required");
            v.check(
                open.is_some_and(|m| m < 24 * 60),
                &format!("{at}.open"),
                "HH:MM between 00:00 and 23:59",
            );
            v.check(
                close.is_some() && close > open,
                &format!("{at}.close"),
                "HH:MM after open (24:00 for midnight)",
            );
            if let (Some(day), Some(open), Some(close)) = (day, open, close) {
                intervals.push(Interval { day, open, close });
            }
        }
        zone_ok.then_some(Self {
            time_zone: hours.time_zone,
            intervals,
        })
    }

    pub fn to_proto(&self) -> pb::BusinessHours {
        pb::BusinessHours {
            time_zone: self.time_zone.clone(),
            intervals: self
                .intervals
                .iter()
                .map(|i| pb::OpeningInterval {
                    day: weekday_proto(i.day).into(),
                    open: clock(i.open),
                    close: clock(i.close),
                })
                .collect(),
        }
    }

    /// Whether `at` falls inside an opening interval, in the campaign's zone.
    /// An unknown zone (it was valid when saved) counts as open rather than
    /// flagging every attention.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let Ok(zone) = TimeZone::get(&self.time_zone) else {
            return true;
        };
        let Ok(instant) = jiff::Timestamp::from_second(at.timestamp()) else {
            return true;
        };
        let local = instant.to_zoned(zone);
        let day = local.weekday().to_monday_one_offset();
        let minute =
            u16::from(local.hour().unsigned_abs()) * 60 + u16::from(local.minute().unsigned_abs());
        self.intervals
            .iter()
            .any(|i| i.day == day.unsigned_abs() && (i.open..i.close).contains(&minute))
    }
}

/// `HH:MM` as minutes after midnight; `24:00` is allowed (as a closing time).
fn minutes(text: &str) -> Option<u16> {
    let (hours, mins) = text.split_once(':')?;
    if hours.len() != 2 || mins.len() != 2 {
        return None;
    }
    let (hours, mins): (u16, u16) = (hours.parse().ok()?, mins.parse().ok()?);
    let total = hours * 60 + mins;
    (mins < 60 && total <= 24 * 60).then_some(total)
}

fn clock(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn weekday_number(day: pb::Weekday) -> Option<u8> {
    let weekday = match day {
        pb::Weekday::Unspecified => return None,
        pb::Weekday::Monday => Weekday::Monday,
        pb::Weekday::Tuesday => Weekday::Tuesday,
        pb::Weekday::Wednesday => Weekday::Wednesday,
        pb::Weekday::Thursday => Weekday::Thursday,
        pb::Weekday::Friday => Weekday::Friday,
        pb::Weekday::Saturday => Weekday::Saturday,
        pb::Weekday::Sunday => Weekday::Sunday,
    };
    Some(weekday.to_monday_one_offset().unsigned_abs())
}

fn weekday_proto(day: u8) -> pb::Weekday {
    pb::Weekday::try_from(i32::from(day)).unwrap_or(pb::Weekday::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(zone: &str, intervals: &[(pb::Weekday, &str, &str)]) -> pb::BusinessHours {
        pb::BusinessHours {
            time_zone: zone.into(),
            intervals: intervals
                .iter()
                .map(|(day, open, close)| pb::OpeningInterval {
                    day: (*day).into(),
                    open: (*open).into(),
                    close: (*close).into(),
                })
                .collect(),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn opening_hours_are_local_to_the_campaign_zone() {
        let mut v = Violations::default();
        let hours = BusinessHours::from_proto(
            hours(
                "America/Argentina/Buenos_Aires",
                &[(pb::Weekday::Monday, "09:00", "18:00")],
            ),
            "campaign.business_hours",
            &mut v,
        )
        .expect("valid");
        assert!(v.is_empty());
        // Buenos Aires is UTC-3: Monday 2026-11-23 09:00 local is 12:00 UTC.
        assert!(!hours.is_open(at("2026-11-23T11:59:00Z")));
        assert!(hours.is_open(at("2026-11-23T12:00:00Z")));
        assert!(hours.is_open(at("2026-11-23T20:59:00Z")));
        assert!(!hours.is_open(at("2026-11-23T21:00:00Z")));
        // Tuesday is closed.
        assert!(!hours.is_open(at("2026-11-24T15:00:00Z")));
    }

    #[test]
    fn midnight_closes_the_day() {
        let mut v = Violations::default();
        let hours = BusinessHours::from_proto(
            hours("UTC", &[(pb::Weekday::Sunday, "20:00", "24:00")]),
            "h",
            &mut v,
        )
        .expect("valid");
        assert!(v.is_empty());
        assert!(hours.is_open(at("2026-11-29T23:59:00Z")));
        assert!(!hours.is_open(at("2026-11-30T00:00:00Z")));
        assert_eq!(hours.to_proto().intervals[0].close, "24:00");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut v = Violations::default();
        let parsed = BusinessHours::from_proto(
            hours(
                "Mars/Olympus",
                &[
                    (pb::Weekday::Unspecified, "9:00", "18:00"),
                    (pb::Weekday::Monday, "18:00", "09:00"),
                ],
            ),
            "h",
            &mut v,
        );
        assert!(parsed.is_none());
        assert_eq!(
            v.fields(),
            vec![
                "h.time_zone",
                "h.intervals[0].day",
                // Its close is fine: only the open time is wrong.
                "h.intervals[0].open",
                "h.intervals[1].close",
            ]
        );
    }
}
