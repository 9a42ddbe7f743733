//! What organizers send, and how each body is checked field by field before anything is written.
//! Required fields are `Option`s so a missing one is reported by name with the others.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use contracts::policy::CancellationPolicy;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::{
    domain::{
        EventKind, VenueKind, policy,
        seatmap::{self, RowSpec},
        teams,
        validate::{
            MAX_AREAS, MAX_COORD, MAX_GRADES, MAX_NAME, MAX_PERFORMANCES, MAX_POLYGON_POINTS,
            MAX_PRICE_KRW, MAX_RANK, MAX_REASON, MAX_ROW_SEATS, MAX_ROWS, MAX_SALE_WINDOWS,
            MAX_STANDING, MAX_TEXT, MAX_TICKET_LIMIT, MAX_VENUE_SEATS, Problems, TextKind,
        },
    },
    model::{PriceTier, SaleWindow},
};

/// A field that may be sent as `null` (kept as `Some(Value::Null)`, told apart from absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn required<'a, T>(p: &mut Problems, field: &str, v: &'a Option<T>) -> Option<&'a T> {
    if v.is_none() {
        p.add(field, "is required");
    }
    v.as_ref()
}

/// The body of `POST /api/v1/admin/venues`: a venue with its seat map (which cannot be edited
/// later). Every invalid field is named in one 400 `validation_failed`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VenueInput {
    /// Name (Korean or local), 1–200 characters, not blank.
    #[schema(value_type = String, required = true)]
    pub(super) name: Option<String>,
    /// English name, at most 200 characters.
    #[serde(default)]
    pub(super) name_en: String,
    /// What the venue is.
    #[schema(value_type = VenueKind, required = true)]
    pub(super) kind: Option<String>,
    /// City.
    #[serde(default)]
    pub(super) city: String,
    /// Street address.
    #[serde(default)]
    pub(super) address: String,
    /// The drawing frame: an object with positive `width` and `height` (default
    /// `{"width": 1000, "height": 1000}`); every number in it from -1000000 to 1000000.
    #[schema(value_type = Option<Object>)]
    pub(super) plan: Option<Value>,
    /// Seat grades, 1–50, codes unique.
    #[serde(default)]
    #[schema(required = true, min_items = 1, max_items = 50)]
    pub(super) grades: Vec<GradeInput>,
    /// Areas, 1–1000, codes unique; at most 100000 seats in all.
    #[serde(default)]
    #[schema(required = true, min_items = 1, max_items = 1000)]
    pub(super) areas: Vec<AreaInput>,
}

/// A grade of a new venue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GradeInput {
    /// Code: 1–40 of `a-z 0-9 _ -`, unique in the venue.
    #[schema(value_type = String, required = true, pattern = "^[a-z0-9_-]{1,40}$")]
    pub(super) code: Option<String>,
    /// Name, 1–200 characters, not blank.
    #[schema(value_type = String, required = true)]
    pub(super) name: Option<String>,
    /// English name.
    #[serde(default)]
    pub(super) name_en: String,
    /// `#rrggbb` (default `#888888`).
    #[schema(pattern = "^#[0-9A-Fa-f]{6}$")]
    pub(super) color: Option<String>,
    /// Lower is closer to the field or stage, 0–1000 (default 0).
    #[schema(minimum = 0, maximum = 1000)]
    pub(super) rank: Option<i32>,
}

/// An area of a new venue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AreaInput {
    /// Code: 1–40 of `a-z 0-9 _ -`, unique in the venue.
    #[schema(value_type = String, required = true, pattern = "^[a-z0-9_-]{1,40}$")]
    pub(super) code: Option<String>,
    /// Name shown to buyers, 1–200 characters, not blank.
    #[schema(value_type = String, required = true)]
    pub(super) name: Option<String>,
    /// One of the venue's grade codes.
    #[schema(value_type = String, required = true)]
    pub(super) grade: Option<String>,
    /// `seated` (default) or `standing`.
    pub(super) kind: Option<String>,
    /// `{"polygon": [[x, y], ...]}` with 3–1000 points, or `{"position": {"x", "y"}}`; every
    /// number from -1000000 to 1000000.
    #[schema(value_type = Object, required = true)]
    pub(super) geometry: Option<Value>,
    /// Standing areas only (required there): places, 1–200000.
    #[schema(minimum = 1, maximum = 200_000)]
    pub(super) capacity: Option<i32>,
    /// Seated areas only (1–200 there).
    #[serde(default)]
    #[schema(max_items = 200)]
    pub(super) rows: Vec<RowInput>,
}

/// A row of a seated area.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RowInput {
    /// Label: 1–10 letters or digits, unique in the area.
    #[schema(value_type = String, required = true)]
    pub(super) label: Option<String>,
    /// Seats in the row, 1–500.
    #[schema(value_type = i32, required = true, minimum = 1, maximum = 500)]
    pub(super) seats: Option<i32>,
    /// The first seat's number, 0–10000 (default 1).
    #[schema(minimum = 0, maximum = 10_000)]
    pub(super) first_number: Option<i32>,
    /// Numbers of the wheelchair-accessible seats, each a seat of the row.
    #[serde(default)]
    #[schema(max_items = 500)]
    pub(super) wheelchair: Vec<i32>,
    /// Tables (테이블석): groups of 2–8 seat numbers of the row, sold together (a hold takes a
    /// table whole or not at all); no seat at two tables.
    #[serde(default)]
    #[schema(max_items = 250)]
    pub(super) tables: Vec<Vec<i32>>,
    /// Companion seats (동반석): `[wheelchair_number, companion_number]` pairs; the first one of
    /// `wheelchair`, the second another seat of the row that is not a wheelchair seat, no seat
    /// in two pairs. A companion seat is held only with its wheelchair seat.
    #[serde(default)]
    #[schema(max_items = 250)]
    pub(super) companions: Vec<Vec<i32>>,
}

/// A checked area: its rows laid out.
pub(super) struct CheckedArea {
    pub(super) code: String,
    pub(super) name: String,
    pub(super) grade: String,
    pub(super) standing: bool,
    pub(super) capacity: i32,
    pub(super) geometry: Value,
    pub(super) seats: Vec<seatmap::PlacedSeat>,
}

fn check_plan(p: &mut Problems, plan: Option<&Value>) {
    if let Some(plan) = plan {
        let positive = |k: &str| {
            plan.get(k)
                .and_then(Value::as_f64)
                .is_some_and(|v| v > 0.0 && v <= MAX_COORD)
        };
        let ok = positive("width") && positive("height");
        p.check(
            !ok,
            "plan",
            format!("must be an object with `width` and `height` from 0 (excluded) to {MAX_COORD}"),
        );
        if ok {
            p.drawing("plan", plan);
        }
    }
}

/// Checks an area's geometry; its bounding box when it is right.
fn check_geometry(p: &mut Problems, f: &str, g: &Value) -> Option<(f64, f64, f64, f64)> {
    let field = format!("{f}.geometry");
    let points = g.get("polygon").and_then(Value::as_array).map(Vec::len);
    if points.is_some_and(|n| n > MAX_POLYGON_POINTS) {
        p.add(
            field,
            format!("a polygon has at most {MAX_POLYGON_POINTS} points"),
        );
        return None;
    }
    let before = p.len();
    p.drawing(&field, g);
    if p.len() > before {
        return None;
    }
    let b = seatmap::bounds(g);
    p.check(
        b.is_none(),
        field,
        "must be {\"polygon\": [[x, y], ...]} with at least 3 points, or {\"position\": {\"x\", \"y\"}}",
    );
    b
}

/// The seats the seated areas of `areas` describe, counted without laying any out (each row
/// counted at most [`MAX_ROW_SEATS`], so a huge count is an invalid row, not an overflow).
fn described_seats(areas: &[AreaInput]) -> i64 {
    areas
        .iter()
        .filter(|a| a.kind.as_deref() != Some("standing"))
        .flat_map(|a| &a.rows)
        .map(|r| i64::from(r.seats.unwrap_or(0).clamp(0, MAX_ROW_SEATS)))
        .sum()
}

impl VenueInput {
    /// Checks the venue; returns its kind and laid-out areas when nothing is wrong.
    pub(super) fn check(&self, p: &mut Problems) -> (VenueKind, Vec<CheckedArea>) {
        if let Some(name) = required(p, "name", &self.name) {
            p.name("name", name, MAX_NAME);
        }
        p.line("name_en", &self.name_en, MAX_NAME);
        p.line("city", &self.city, MAX_NAME);
        p.line("address", &self.address, MAX_NAME);
        let kind = required(p, "kind", &self.kind).and_then(|k| {
            let v = VenueKind::parse(k);
            p.check(
                v.is_none(),
                "kind",
                format!("must be one of {}", VenueKind::names()),
            );
            v
        });
        check_plan(p, self.plan.as_ref());
        p.check(
            self.grades.is_empty(),
            "grades",
            "must list at least one grade",
        );
        p.check(
            self.areas.is_empty(),
            "areas",
            "must list at least one area",
        );
        // Count first: nothing is checked one by one, or laid out, past a bound.
        let seats = described_seats(&self.areas);
        let too_many = [
            (
                self.grades.len() > MAX_GRADES,
                "grades",
                format!("must list at most {MAX_GRADES} grades"),
            ),
            (
                self.areas.len() > MAX_AREAS,
                "areas",
                format!("must list at most {MAX_AREAS} areas"),
            ),
            (
                seats > MAX_VENUE_SEATS,
                "areas",
                format!("must describe at most {MAX_VENUE_SEATS} seats in all, not {seats}"),
            ),
        ];
        let mut over = false;
        for (bad, field, message) in too_many {
            p.check(bad, field, message);
            over |= bad;
        }
        if over {
            return (kind.unwrap_or(VenueKind::Other), Vec::new());
        }
        let mut grade_ranks = std::collections::HashMap::new();
        for (i, g) in self.grades.iter().enumerate() {
            let f = format!("grades[{i}]");
            if let Some(code) = required(p, &format!("{f}.code"), &g.code) {
                p.code(&format!("{f}.code"), code);
                p.check(
                    grade_ranks
                        .insert(code.clone(), g.rank.unwrap_or(0))
                        .is_some(),
                    format!("{f}.code"),
                    "is listed twice",
                );
            }
            if let Some(name) = required(p, &format!("{f}.name"), &g.name) {
                p.name(&format!("{f}.name"), name, MAX_NAME);
            }
            p.line(&format!("{f}.name_en"), &g.name_en, MAX_NAME);
            p.check(
                g.rank.is_some_and(|r| !(0..=MAX_RANK).contains(&r)),
                format!("{f}.rank"),
                format!("must be from 0 to {MAX_RANK}"),
            );
            if let Some(color) = &g.color {
                let ok = color.len() == 7
                    && color.starts_with('#')
                    && color[1..].chars().all(|c| c.is_ascii_hexdigit());
                p.check(!ok, format!("{f}.color"), "must be a #rrggbb colour");
            }
        }
        let mut codes = HashSet::new();
        let mut areas = Vec::new();
        for (i, a) in self.areas.iter().enumerate() {
            let f = format!("areas[{i}]");
            let code = required(p, &format!("{f}.code"), &a.code);
            if let Some(code) = code {
                p.code(&format!("{f}.code"), code);
                p.check(
                    !codes.insert(code.clone()),
                    format!("{f}.code"),
                    "is listed twice",
                );
            }
            if let Some(name) = required(p, &format!("{f}.name"), &a.name) {
                p.name(&format!("{f}.name"), name, MAX_NAME);
            }
            let grade = required(p, &format!("{f}.grade"), &a.grade);
            if let Some(g) = grade {
                p.line(&format!("{f}.grade"), g, 40);
                p.check(
                    !grade_ranks.contains_key(g),
                    format!("{f}.grade"),
                    "is not one of the venue's grades",
                );
            }
            let standing = match a.kind.as_deref() {
                None | Some("seated") => false,
                Some("standing") => true,
                Some(_) => {
                    p.add(format!("{f}.kind"), "must be `seated` or `standing`");
                    false
                }
            };
            let bounds = required(p, &format!("{f}.geometry"), &a.geometry)
                .and_then(|g| check_geometry(p, &f, g));
            let rows = self.check_rows(p, &f, a, standing);
            if let (Some(code), Some(name), Some(grade), Some(geometry), Some(b)) =
                (code, &a.name, grade, &a.geometry, bounds)
            {
                let rank = grade_ranks.get(grade).copied().unwrap_or(0);
                areas.push(CheckedArea {
                    code: code.clone(),
                    name: name.clone(),
                    grade: grade.clone(),
                    standing,
                    capacity: a.capacity.unwrap_or(0),
                    geometry: geometry.clone(),
                    seats: if standing {
                        Vec::new()
                    } else {
                        seatmap::place(code, b, &rows, rank)
                    },
                });
            }
        }
        (kind.unwrap_or(VenueKind::Other), areas)
    }

    fn check_rows(&self, p: &mut Problems, f: &str, a: &AreaInput, standing: bool) -> Vec<RowSpec> {
        if standing {
            let ok = a.capacity.is_some_and(|c| (1..=MAX_STANDING).contains(&c));
            p.check(
                !ok,
                format!("{f}.capacity"),
                format!("a standing area needs a capacity from 1 to {MAX_STANDING}"),
            );
            p.check(
                !a.rows.is_empty(),
                format!("{f}.rows"),
                "a standing area has no rows",
            );
            return Vec::new();
        }
        p.check(
            a.rows.is_empty(),
            format!("{f}.rows"),
            "a seated area needs at least one row",
        );
        p.check(
            a.capacity.is_some(),
            format!("{f}.capacity"),
            "a seated area's capacity is its seat count; leave it out",
        );
        if a.rows.len() > MAX_ROWS {
            p.add(
                format!("{f}.rows"),
                format!("a seated area has at most {MAX_ROWS} rows"),
            );
            return Vec::new();
        }
        let mut labels = HashSet::new();
        let mut rows = Vec::new();
        for (j, r) in a.rows.iter().enumerate() {
            let rf = format!("{f}.rows[{j}]");
            let label = required(p, &format!("{rf}.label"), &r.label)
                .cloned()
                .unwrap_or_default();
            if r.label.is_some() && p.text(&format!("{rf}.label"), &label, 10, TextKind::Line) {
                let ok = !label.is_empty() && label.chars().all(|c| c.is_alphanumeric());
                p.check(!ok, format!("{rf}.label"), "must be 1-10 letters or digits");
            }
            p.check(
                !labels.insert(label.clone()),
                format!("{rf}.label"),
                "is listed twice",
            );
            let seats = required(p, &format!("{rf}.seats"), &r.seats)
                .copied()
                .unwrap_or(0);
            p.check(
                r.seats.is_some() && !(1..=MAX_ROW_SEATS).contains(&seats),
                format!("{rf}.seats"),
                format!("must be from 1 to {MAX_ROW_SEATS}"),
            );
            let first = r.first_number.unwrap_or(1);
            p.check(
                !(0..=10_000).contains(&first),
                format!("{rf}.first_number"),
                "must be from 0 to 10000",
            );
            let numbers = first..first.saturating_add(seats.clamp(0, MAX_ROW_SEATS));
            p.check(
                r.wheelchair.len() > usize::try_from(seats.clamp(0, MAX_ROW_SEATS)).unwrap_or(0)
                    || r.wheelchair.iter().any(|n| !numbers.contains(n)),
                format!("{rf}.wheelchair"),
                "must list seat numbers of the row, no more than it has seats",
            );
            let (tables, companions) = group_lists(p, &rf, &r.tables, &r.companions, seats);
            for (field, message) in
                seatmap::group_problems(numbers, &r.wheelchair, &tables, &companions)
            {
                p.add(format!("{rf}.{field}"), message);
            }
            rows.push(RowSpec {
                label,
                seats,
                first_number: first,
                wheelchair: r.wheelchair.clone(),
                tables,
                companions,
            });
        }
        rows
    }
}

/// A row's `tables` and `companions` within their bounds (a row of `seats` seats has at most
/// half as many tables or pairs, each pair two numbers), or a problem naming the list and the
/// list left out, so an oversized list is not checked item by item.
fn group_lists(
    p: &mut Problems,
    rf: &str,
    tables: &[Vec<i32>],
    companions: &[Vec<i32>],
    seats: i32,
) -> (Vec<Vec<i32>>, Vec<[i32; 2]>) {
    let most = usize::try_from(seats.clamp(0, MAX_ROW_SEATS) / 2).unwrap_or(0);
    let tables = if tables.len() > most {
        p.add(
            format!("{rf}.tables"),
            format!("a row of {seats} seats has at most {most} tables"),
        );
        Vec::new()
    } else {
        tables.to_vec()
    };
    let companions = if companions.len() > most {
        p.add(
            format!("{rf}.companions"),
            format!("a row of {seats} seats has at most {most} pairs"),
        );
        Vec::new()
    } else {
        let pairs: Option<Vec<[i32; 2]>> = companions
            .iter()
            .map(|pair| <[i32; 2]>::try_from(pair.as_slice()).ok())
            .collect();
        pairs.unwrap_or_else(|| {
            p.add(
                format!("{rf}.companions"),
                "each pair is [wheelchair_number, companion_number]",
            );
            Vec::new()
        })
    };
    (tables, companions)
}

/// The body of `PATCH /api/v1/admin/venues/{venue_id}`: the fields to change (absent or `null`:
/// unchanged). The seat map cannot be changed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VenuePatch {
    /// Name, 1–200 characters, not blank.
    pub(super) name: Option<String>,
    /// English name, at most 200 characters.
    pub(super) name_en: Option<String>,
    /// City, at most 200 characters.
    pub(super) city: Option<String>,
    /// Street address, at most 200 characters.
    pub(super) address: Option<String>,
    /// The drawing frame: an object with positive `width` and `height`.
    #[schema(value_type = Option<Object>)]
    pub(super) plan: Option<Value>,
    /// Whether every organizer may hold events here (`false`: only its owner, admins and the
    /// organizers it was granted to).
    pub(super) shared: Option<bool>,
}

impl VenuePatch {
    /// Checks the changes.
    pub(super) fn check(&self, p: &mut Problems) {
        if let Some(n) = &self.name {
            p.name("name", n, MAX_NAME);
        }
        for (f, v) in [
            ("name_en", &self.name_en),
            ("city", &self.city),
            ("address", &self.address),
        ] {
            if let Some(v) = v {
                p.line(f, v, MAX_NAME);
            }
        }
        check_plan(p, self.plan.as_ref());
    }
}

/// A price tier as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TierInput {
    /// One of the venue's grade codes, each listed once.
    #[schema(value_type = String, required = true)]
    pub(super) grade: Option<String>,
    /// Name shown to buyers, 1–200 characters (default the grade's name).
    pub(super) name: Option<String>,
    /// Price per ticket, whole KRW, 1–10000000 (0 only for an event marked `free`).
    #[schema(value_type = i64, required = true, minimum = 0, maximum = 10_000_000)]
    pub(super) price_krw: Option<i64>,
}

/// Checks tiers against the venue's grades (code → name); a price of 0 only when `free`.
pub(super) fn check_tiers(
    p: &mut Problems,
    tiers: &[TierInput],
    grades: &[(String, String)],
    free: bool,
) -> Vec<PriceTier> {
    p.check(
        tiers.is_empty(),
        "price_tiers",
        "must list at least one price",
    );
    if tiers.len() > MAX_GRADES {
        p.add(
            "price_tiers",
            format!("must list at most {MAX_GRADES} prices (one per grade)"),
        );
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, t) in tiers.iter().enumerate() {
        let f = format!("price_tiers[{i}]");
        let grade = required(p, &format!("{f}.grade"), &t.grade)
            .filter(|g| p.text(&format!("{f}.grade"), g, 40, TextKind::Line));
        let known = grade.and_then(|g| grades.iter().find(|(c, _)| c == g));
        if let Some(g) = grade {
            p.check(
                known.is_none(),
                format!("{f}.grade"),
                format!("`{g}` is not a grade of the venue"),
            );
            p.check(
                !seen.insert(g.clone()),
                format!("{f}.grade"),
                "is listed twice",
            );
        }
        let price = required(p, &format!("{f}.price_krw"), &t.price_krw).copied();
        p.check(
            price.is_some_and(|v| !(0..=MAX_PRICE_KRW).contains(&v)),
            format!("{f}.price_krw"),
            format!("must be a whole number of KRW from 0 to {MAX_PRICE_KRW}"),
        );
        p.check(
            price == Some(0) && !free,
            format!("{f}.price_krw"),
            "may be 0 only for an event marked `free`",
        );
        if let Some(n) = &t.name {
            p.name(&format!("{f}.name"), n, MAX_NAME);
        }
        if let (Some((code, name)), Some(price)) = (known, price) {
            out.push(PriceTier {
                grade: code.clone(),
                name: t.name.clone().unwrap_or_else(|| name.clone()),
                price_krw: price,
            });
        }
    }
    out
}

/// A sale window as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowInput {
    /// `presale` or `general` (default).
    pub(super) kind: Option<String>,
    /// Name shown to buyers, 1–200 characters (default `선예매 Presale` or `일반예매 General
    /// sale`).
    pub(super) name: Option<String>,
    /// Opening, before the performance starts.
    #[schema(value_type = DateTime<Utc>, required = true)]
    pub(super) opens_at: Option<DateTime<Utc>>,
    /// Closing, after `opens_at`.
    #[schema(value_type = DateTime<Utc>, required = true)]
    pub(super) closes_at: Option<DateTime<Utc>>,
}

/// A performance as sent (the body of `POST /api/v1/admin/events/{event_id}/performances`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PerformanceInput {
    /// Start.
    #[schema(value_type = DateTime<Utc>, required = true)]
    pub(super) starts_at: Option<DateTime<Utc>>,
    /// Sale windows, 1–10, each opening before the start.
    #[serde(default)]
    #[schema(required = true, min_items = 1, max_items = 10)]
    pub(super) sale_windows: Vec<WindowInput>,
}

/// Checks sale windows of a performance starting at `starts_at`.
pub(super) fn check_windows(
    p: &mut Problems,
    f: &str,
    windows: &[WindowInput],
    starts_at: Option<DateTime<Utc>>,
) -> Vec<SaleWindow> {
    p.check(
        windows.is_empty(),
        format!("{f}sale_windows"),
        "must list at least one sale window",
    );
    if windows.len() > MAX_SALE_WINDOWS {
        p.add(
            format!("{f}sale_windows"),
            format!("must list at most {MAX_SALE_WINDOWS} sale windows"),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let wf = format!("{f}sale_windows[{i}]");
        let kind = match w.kind.as_deref() {
            None | Some("general") => "general",
            Some("presale") => "presale",
            Some(_) => {
                p.add(format!("{wf}.kind"), "must be `presale` or `general`");
                "general"
            }
        };
        let opens = required(p, &format!("{wf}.opens_at"), &w.opens_at).copied();
        let closes = required(p, &format!("{wf}.closes_at"), &w.closes_at).copied();
        if let (Some(o), Some(c)) = (opens, closes) {
            p.check(
                o >= c,
                format!("{wf}.closes_at"),
                "must be after `opens_at`",
            );
            if let Some(s) = starts_at {
                p.check(
                    o >= s,
                    format!("{wf}.opens_at"),
                    "must be before the performance starts",
                );
            }
            let name = w.name.clone().unwrap_or_else(|| {
                if kind == "presale" {
                    "선예매 Presale"
                } else {
                    "일반예매 General sale"
                }
                .to_owned()
            });
            p.name(&format!("{wf}.name"), &name, MAX_NAME);
            out.push(SaleWindow {
                kind: kind.to_owned(),
                name,
                opens_at: o,
                closes_at: c,
            });
        }
    }
    out.sort_by_key(|w| w.opens_at);
    out
}

impl PerformanceInput {
    /// Checks the performance; `f` prefixes field names (e.g. `performances[0].`).
    pub(super) fn check(
        &self,
        p: &mut Problems,
        f: &str,
    ) -> Option<(DateTime<Utc>, Vec<SaleWindow>)> {
        let starts = required(p, &format!("{f}starts_at"), &self.starts_at).copied();
        let windows = check_windows(p, f, &self.sale_windows, starts);
        starts.map(|s| (s, windows))
    }
}

/// The body of `POST /api/v1/admin/events`: a draft event, optionally with draft performances.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventInput {
    /// What the event is.
    #[schema(value_type = EventKind, required = true)]
    pub(super) kind: Option<String>,
    /// Title, 1–200 characters, not blank.
    #[schema(value_type = String, required = true)]
    pub(super) title: Option<String>,
    /// Description, at most 10000 characters (tab and line breaks allowed, no other control
    /// characters).
    #[serde(default)]
    pub(super) description: String,
    /// An existing venue.
    #[schema(value_type = Uuid, required = true)]
    pub(super) venue_id: Option<String>,
    /// A known team by any of its names (`doosan`, `두산`, `Doosan Bears`).
    pub(super) home_team: Option<String>,
    /// A known team, not the home team.
    pub(super) away_team: Option<String>,
    /// Most tickets per buyer, 1–20 (default 4).
    #[schema(minimum = 1, maximum = 20)]
    pub(super) ticket_limit: Option<i32>,
    /// Whether a waiting room guards the opening (default false).
    #[serde(default)]
    pub(super) waiting_room: bool,
    /// A free event: its prices may be 0 (default false: every price at least 1).
    #[serde(default)]
    pub(super) free: bool,
    /// Prices by grade of the venue, 1–50.
    #[serde(default)]
    #[schema(required = true, min_items = 1, max_items = 50)]
    pub(super) price_tiers: Vec<TierInput>,
    /// Draft performances, at most 1000 (the most an event has).
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub(super) performances: Vec<PerformanceInput>,
    /// A preset's name or a policy object; absent or `null`: the platform default.
    #[serde(default)]
    #[schema(value_type = Option<CancellationPolicyInput>)]
    pub(super) cancellation_policy: Option<Value>,
}

/// A cancellation policy as organizers send it, for the OpenAPI document only (the field is read
/// as JSON and checked by [`policy::parse`]): a preset's name, or an object of the fields of
/// `CancellationPolicy`, the missing ones from the preset it names in `preset`, else the standard
/// schedule.
pub(super) enum CancellationPolicyInput {}

impl utoipa::PartialSchema for CancellationPolicyInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
        };
        let preset = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(policy::PRESETS.iter().map(|(name, _)| *name)))
                .description(Some(description))
        };
        let whole = |description: &str, max: i64| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(max))
                .description(Some(description))
        };
        let object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "preset",
                preset("The preset the missing fields come from (else the standard schedule)"),
            )
            .property(
                "free_days_after_booking",
                whole("Days after booking of free cancelling", policy::MAX_DAYS),
            )
            .property(
                "flat_fee_krw",
                whole("The fee per ticket past the free days, KRW", MAX_PRICE_KRW),
            )
            .property(
                "flat_fee_from_days",
                whole(
                    "The free days and flat fee apply while at least this many days are left",
                    policy::MAX_DAYS,
                ),
            )
            .property(
                "tiers",
                ArrayBuilder::new()
                    .items(<contracts::policy::Tier as utoipa::PartialSchema>::schema())
                    .max_items(Some(policy::MAX_TIERS))
                    .description(Some("Percentages kept closer to the performance")),
            )
            .property(
                "cutoff_hour",
                whole("The cut-off hour (Seoul) of the day before", 23),
            )
            .property(
                "saturday_cutoff_hour",
                whole("The cut-off hour when that day is a Saturday", 23),
            )
            .additional_properties(Some(
                AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false),
            ));
        OneOfBuilder::new()
            .item(preset("A preset: the standard schedule with its flat fee"))
            .item(object)
            .description(Some(
                "A preset's name, or a policy object checked field by field (every problem named \
                 in one 400 `validation_failed`)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for CancellationPolicyInput {}

/// The checked scalar fields of a new event.
pub(super) struct CheckedEvent {
    pub(super) kind: EventKind,
    pub(super) home: Option<&'static teams::Team>,
    pub(super) away: Option<&'static teams::Team>,
    pub(super) cancellation_policy: Option<CancellationPolicy>,
}

/// Checks a ticket limit.
pub(super) fn check_limit(p: &mut Problems, limit: Option<i32>) {
    p.check(
        limit.is_some_and(|l| !(1..=MAX_TICKET_LIMIT).contains(&l)),
        "ticket_limit",
        format!("must be from 1 to {MAX_TICKET_LIMIT}"),
    );
}

impl EventInput {
    /// Checks what needs no database.
    pub(super) fn check(&self, p: &mut Problems) -> Option<CheckedEvent> {
        let kind = required(p, "kind", &self.kind).and_then(|k| {
            let v = EventKind::parse(k);
            p.check(
                v.is_none(),
                "kind",
                format!("must be one of {}", EventKind::names()),
            );
            v
        });
        if let Some(t) = required(p, "title", &self.title) {
            p.name("title", t, MAX_NAME);
        }
        p.text("description", &self.description, MAX_TEXT, TextKind::Free);
        if let Some(v) = required(p, "venue_id", &self.venue_id) {
            p.check(
                uuid::Uuid::parse_str(v).is_err(),
                "venue_id",
                "must be a UUID",
            );
        }
        p.check(
            i64::try_from(self.performances.len()).unwrap_or(i64::MAX) > MAX_PERFORMANCES,
            "performances",
            format!("must list at most {MAX_PERFORMANCES} performances"),
        );
        check_limit(p, self.ticket_limit);
        let mut team = |field: &str, v: &Option<String>| {
            v.as_deref()
                .filter(|t| p.text(field, t, MAX_NAME, TextKind::Line))
                .and_then(|t| {
                    let found = teams::resolve(t);
                    p.check(found.is_none(), field, "is not a known team");
                    found
                })
        };
        let home = team("home_team", &self.home_team);
        let away = team("away_team", &self.away_team);
        p.check(
            home.is_some() && home.map(|t| t.code) == away.map(|t| t.code),
            "away_team",
            "must differ from the home team",
        );
        let cancellation_policy = self
            .cancellation_policy
            .as_ref()
            .and_then(|v| policy::parse(p, "cancellation_policy", v));
        Some(CheckedEvent {
            kind: kind?,
            home,
            away,
            cancellation_policy,
        })
    }
}

/// The body of `PATCH /api/v1/admin/events/{event_id}`: the fields to change (absent or `null`:
/// unchanged, except `cancellation_policy`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventPatch {
    /// Title, 1–200 characters, not blank.
    pub(super) title: Option<String>,
    /// Description, at most 10000 characters (tab and line breaks allowed, no other control
    /// characters).
    pub(super) description: Option<String>,
    /// Most tickets per buyer, 1–20; after a sale opened, a change is an admin's, recorded in the
    /// audit log.
    #[schema(minimum = 1, maximum = 20)]
    pub(super) ticket_limit: Option<i32>,
    /// Whether a waiting room guards the opening.
    pub(super) waiting_room: Option<bool>,
    /// A free event (its prices may be 0); `false` is refused while a price is 0.
    pub(super) free: Option<bool>,
    /// The prices by grade, replacing all of them (1–50); after a sale opened, a change of a
    /// price (not of a name) is an admin's, recorded in the audit log.
    #[schema(min_items = 1, max_items = 50)]
    pub(super) price_tiers: Option<Vec<TierInput>>,
    /// Absent: unchanged; `null`: back to the platform default; else a preset's name or a
    /// policy object, replacing the event's (not merged with it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<CancellationPolicyInput>)]
    pub(super) cancellation_policy: Option<Value>,
}

impl EventPatch {
    /// Checks what needs no database; returns the change of cancellation policy (`None`: none,
    /// `Some(None)`: back to the platform default).
    pub(super) fn check(&self, p: &mut Problems) -> Option<Option<CancellationPolicy>> {
        if let Some(t) = &self.title {
            p.name("title", t, MAX_NAME);
        }
        if let Some(d) = &self.description {
            p.text("description", d, MAX_TEXT, TextKind::Free);
        }
        check_limit(p, self.ticket_limit);
        self.cancellation_policy
            .as_ref()
            .map(|v| policy::parse(p, "cancellation_policy", v))
    }
}

/// The body of `PATCH /api/v1/admin/performances/{performance_id}`: the fields to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PerformancePatch {
    /// The new start (the sale windows kept must still open before it); once its sale opened,
    /// a change is an admin's, recorded in the audit log.
    pub(super) starts_at: Option<DateTime<Utc>>,
    /// Sale windows replacing all of them, 1–10, each opening before the start.
    #[schema(min_items = 1, max_items = 10)]
    pub(super) sale_windows: Option<Vec<WindowInput>>,
}

/// The body of `POST /api/v1/admin/performances/{performance_id}/cancel`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelInput {
    /// Why, shown to buyers: 1–500 characters, not blank (line breaks allowed, no other
    /// control characters).
    #[schema(value_type = String, required = true)]
    pub(super) reason: Option<String>,
}

impl CancelInput {
    /// Checks the reason.
    pub(super) fn check(&self, p: &mut Problems) {
        match &self.reason {
            Some(r) if r.trim().is_empty() => p.add("reason", "must not be blank"),
            Some(r) => {
                p.text("reason", r, MAX_REASON, TextKind::Free);
            }
            None => p.add("reason", "is required"),
        }
    }
}
