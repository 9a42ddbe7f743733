//! An event's own cancellation schedule, as organizers send it: a preset's name, or an object of
//! the fields of [`CancellationPolicy`] (missing ones from the standard schedule, or from the
//! preset the object names in `preset`). It is checked field by field here, stored whole with
//! the event and published with each of its performances; the order service freezes it onto
//! every order made from then on. An event without one gets the platform's default
//! (`order.cancellation`).

use contracts::policy::{CancellationPolicy, Tier};
use serde_json::Value;

use super::validate::{MAX_PRICE_KRW, Problems};

/// The presets of ../shared/docs/domain.md's standard schedule: its flat fee by kind of show.
pub const PRESETS: &[(&str, i64)] = &[("concert", 4_000), ("musical", 4_000), ("theatre", 2_000)];

/// Most days any count of the schedule may span.
pub const MAX_DAYS: i64 = 366;
/// Most tiers of a schedule.
pub const MAX_TIERS: usize = 20;

/// The fields a policy object may have.
const FIELDS: &[&str] = &[
    "preset",
    "free_days_after_booking",
    "flat_fee_krw",
    "flat_fee_from_days",
    "tiers",
    "cutoff_hour",
    "saturday_cutoff_hour",
];

/// The standard schedule with the flat fee of preset `name`.
pub fn preset(name: &str) -> Option<CancellationPolicy> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, fee)| CancellationPolicy::standard(*fee))
}

fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An integer field of `obj` within `lo..=hi`, or a problem naming it; `None` when absent.
fn int(
    p: &mut Problems,
    obj: &serde_json::Map<String, Value>,
    f: &str,
    key: &str,
    lo: i64,
    hi: i64,
) -> Option<i64> {
    let v = obj.get(key)?;
    match v.as_i64() {
        Some(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            p.add(
                format!("{f}.{key}"),
                format!("must be a whole number from {lo} to {hi}"),
            );
            None
        }
    }
}

/// Reads the `cancellation_policy` sent as `v` at field `f`: the policy, or `None` with every
/// problem recorded (and `None` for JSON `null`, the platform default).
pub fn parse(p: &mut Problems, f: &str, v: &Value) -> Option<CancellationPolicy> {
    let obj = match v {
        Value::Null => return None,
        Value::String(name) => {
            let found = preset(name);
            p.check(
                found.is_none(),
                f,
                format!(
                    "must be one of the presets {}, or an object",
                    preset_names()
                ),
            );
            return found;
        }
        Value::Object(obj) => obj,
        _ => {
            p.add(
                f,
                format!(
                    "must be one of the presets {}, or an object",
                    preset_names()
                ),
            );
            return None;
        }
    };
    let before = p.len();
    for key in obj.keys() {
        p.check(
            !FIELDS.contains(&key.as_str()),
            format!("{f}.{key}"),
            "is not a field of a cancellation policy",
        );
    }
    let mut policy = match obj.get("preset") {
        None => CancellationPolicy::default(),
        Some(v) => match v.as_str().and_then(preset) {
            Some(base) => base,
            None => {
                p.add(
                    format!("{f}.preset"),
                    format!("must be one of {}", preset_names()),
                );
                CancellationPolicy::default()
            }
        },
    };
    if let Some(n) = int(p, obj, f, "free_days_after_booking", 0, MAX_DAYS) {
        policy.free_days_after_booking = n;
    }
    if let Some(n) = int(p, obj, f, "flat_fee_krw", 0, MAX_PRICE_KRW) {
        policy.flat_fee_krw = n;
    }
    if let Some(n) = int(p, obj, f, "flat_fee_from_days", 0, MAX_DAYS) {
        policy.flat_fee_from_days = n;
    }
    for key in ["cutoff_hour", "saturday_cutoff_hour"] {
        if let Some(n) = int(p, obj, f, key, 0, 23).and_then(|n| u32::try_from(n).ok()) {
            if key == "cutoff_hour" {
                policy.cutoff_hour = n;
            } else {
                policy.saturday_cutoff_hour = n;
            }
        }
    }
    if let Some(tiers) = obj.get("tiers") {
        if let Some(list) = tiers.as_array() {
            p.check(
                list.len() > MAX_TIERS,
                format!("{f}.tiers"),
                format!("must list at most {MAX_TIERS} tiers"),
            );
            let mut out = Vec::new();
            for (i, t) in list.iter().take(MAX_TIERS).enumerate() {
                let tf = format!("{f}.tiers[{i}]");
                let Some(t) = t.as_object() else {
                    p.add(tf, "must be an object {days_before, percent}");
                    continue;
                };
                for key in t.keys() {
                    p.check(
                        key != "days_before" && key != "percent",
                        format!("{tf}.{key}"),
                        "is not a field of a tier",
                    );
                }
                for key in ["days_before", "percent"] {
                    p.check(!t.contains_key(key), format!("{tf}.{key}"), "is required");
                }
                let days = int(p, t, &tf, "days_before", 0, MAX_DAYS);
                let percent = int(p, t, &tf, "percent", 0, 100);
                if let (Some(days_before), Some(percent)) = (days, percent) {
                    out.push((
                        i,
                        Tier {
                            days_before,
                            percent,
                        },
                    ));
                }
            }
            // Strictly fewer days each, the order they apply in, and each closer than the flat
            // fee's start (a tier from there on would never apply).
            for w in out.windows(2) {
                p.check(
                    w[1].1.days_before >= w[0].1.days_before,
                    format!("{f}.tiers[{}].days_before", w[1].0),
                    "must be fewer than the previous tier's (tiers run from the farthest to the \
                     nearest, each day count once)",
                );
            }
            for (i, t) in &out {
                p.check(
                    t.days_before >= policy.flat_fee_from_days,
                    format!("{f}.tiers[{i}].days_before"),
                    "must be fewer than `flat_fee_from_days` (it would never apply)",
                );
            }
            policy.tiers = out.into_iter().map(|(_, t)| t).collect();
        } else {
            p.add(format!("{f}.tiers"), "must be a list of tiers");
        }
    }
    (p.len() == before).then_some(policy)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn fields(v: Value) -> (Option<CancellationPolicy>, Vec<String>) {
        let mut p = Problems::new();
        let policy = parse(&mut p, "cancellation_policy", &v);
        (policy, p.fields())
    }

    #[test]
    fn presets_and_partial_objects_fill_the_standard_schedule() {
        assert_eq!(fields(json!(null)), (None, vec![]));
        assert_eq!(
            fields(json!("theatre")).0.unwrap(),
            CancellationPolicy::standard(2_000)
        );
        assert_eq!(
            fields(json!("concert")).0.unwrap(),
            CancellationPolicy::default()
        );
        let custom = fields(json!({"preset": "theatre", "cutoff_hour": 18, "tiers": []}))
            .0
            .unwrap();
        assert_eq!(custom.flat_fee_krw, 2_000);
        assert_eq!(custom.cutoff_hour, 18);
        assert!(custom.tiers.is_empty());
        let tiers = fields(json!({"flat_fee_from_days": 5, "tiers": [
            {"days_before": 4, "percent": 0}, {"days_before": 0, "percent": 100}]}))
        .0
        .unwrap();
        assert_eq!(tiers.tiers.len(), 2);
        assert_eq!(tiers.tiers[1].percent, 100);
    }

    #[test]
    fn every_bad_field_is_named() {
        let f = |v: Value| fields(v).1;
        assert_eq!(f(json!("opera")), ["cancellation_policy"]);
        assert_eq!(f(json!(7)), ["cancellation_policy"]);
        assert_eq!(
            f(json!({"preset": "opera"})),
            ["cancellation_policy.preset"]
        );
        assert_eq!(f(json!({"refund": 1})), ["cancellation_policy.refund"]);
        assert_eq!(
            f(json!({"free_days_after_booking": -1, "flat_fee_krw": -4000,
                     "flat_fee_from_days": 1.5, "cutoff_hour": 24, "saturday_cutoff_hour": "11"})),
            [
                "cancellation_policy.free_days_after_booking",
                "cancellation_policy.flat_fee_krw",
                "cancellation_policy.flat_fee_from_days",
                "cancellation_policy.cutoff_hour",
                "cancellation_policy.saturday_cutoff_hour",
            ]
        );
        assert_eq!(
            f(json!({"tiers": [{"days_before": 9, "percent": 101}]})),
            ["cancellation_policy.tiers[0].percent"]
        );
        assert_eq!(
            f(
                json!({"tiers": [{"days_before": 6, "percent": 10}, {"days_before": 6, "percent": 20}]})
            ),
            ["cancellation_policy.tiers[1].days_before"]
        );
        assert_eq!(
            f(
                json!({"tiers": [{"days_before": 2, "percent": 10}, {"days_before": 6, "percent": 20}]})
            ),
            ["cancellation_policy.tiers[1].days_before"]
        );
        assert_eq!(
            f(json!({"tiers": [{"days_before": 10, "percent": 10}]})),
            ["cancellation_policy.tiers[0].days_before"]
        );
        assert_eq!(
            f(json!({"tiers": [{"percent": 10, "x": 1}, 3]})),
            [
                "cancellation_policy.tiers[0].x",
                "cancellation_policy.tiers[0].days_before",
                "cancellation_policy.tiers[1]",
            ]
        );
        assert_eq!(f(json!({"tiers": {}})), ["cancellation_policy.tiers"]);
        let many: Vec<Value> = (0..21)
            .map(|i| json!({"days_before": 30 - i, "percent": 1}))
            .collect();
        assert_eq!(
            f(json!({"flat_fee_from_days": 40, "tiers": many})),
            ["cancellation_policy.tiers"]
        );
    }
}
