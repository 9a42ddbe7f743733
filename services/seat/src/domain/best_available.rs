//! Best available: picks `quantity` free seats for a buyer who did not choose them — adjacent in
//! one row, leaving no orphan single seat beside the block, nearest the field or stage (lowest
//! rank), with optional grade, section and wheelchair filters. A table (테이블석) is picked only
//! whole, when the quantity is its size, and a companion seat (동반석) only with its wheelchair
//! seat; otherwise their seats are skipped.

use std::collections::{BTreeMap, HashMap};

/// A seat as best-available sees it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Seat id.
    pub seat_id: &'a str,
    /// Section id.
    pub section: &'a str,
    /// Row label.
    pub row: &'a str,
    /// Number within the row; consecutive numbers are adjacent.
    pub number: i32,
    /// Grade code.
    pub grade: &'a str,
    /// Distance rank (lower is better).
    pub rank: i32,
    /// Wheelchair-accessible.
    pub wheelchair: bool,
    /// The table of a table seat.
    pub table: Option<&'a str>,
    /// How many seats that table has (0 when none).
    pub table_size: usize,
    /// For a companion seat, its wheelchair seat's id.
    pub companion_of: Option<&'a str>,
    /// On sale right now.
    pub available: bool,
}

/// Whether a seat may be in a pick of `wish`: its filters, and a table seat only when the
/// table is as large as the quantity.
fn eligible(s: &Candidate<'_>, wish: &Wish<'_>) -> bool {
    wish.grade.is_none_or(|g| g == s.grade)
        && wish.section.is_none_or(|sec| sec == s.section)
        && (!wish.wheelchair || s.wheelchair)
        && (s.table.is_none() || s.table_size == wish.quantity)
}

/// Whether a block of eligible seats keeps what is sold together together: either no table
/// seat or every seat of one table (its size being the block's, by [`eligible`]), and every
/// companion seat beside its wheelchair seat.
fn keeps_groups<'c, 'a: 'c>(block: impl Iterator<Item = &'c Candidate<'a>> + Clone) -> bool {
    let mut table = None;
    let mut plain = false;
    for s in block.clone() {
        match s.table {
            Some(t) if table.is_some_and(|other| other != t) => return false,
            Some(t) => table = Some(t),
            None => plain = true,
        }
        if let Some(chair) = s.companion_of
            && !block.clone().any(|o| o.seat_id == chair)
        {
            return false;
        }
    }
    !(plain && table.is_some())
}

/// What the buyer asked for.
#[derive(Debug, Clone, Default)]
pub struct Wish<'a> {
    /// How many seats.
    pub quantity: usize,
    /// Only this grade.
    pub grade: Option<&'a str>,
    /// Only this section.
    pub section: Option<&'a str>,
    /// Only wheelchair-accessible seats.
    pub wheelchair: bool,
}

/// The seats chosen, best first by row and number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// Chosen seat ids.
    pub seat_ids: Vec<String>,
    /// All in one row, side by side.
    pub adjacent: bool,
}

/// How good a block is: orphans left, summed rank, row, first number (smaller is better).
type Score<'a> = (usize, i64, (&'a str, &'a str), i32);

/// Picks seats for `wish` among `seats`; `None` when not enough match.
pub fn pick(seats: &[Candidate<'_>], wish: &Wish<'_>) -> Option<Pick> {
    if wish.quantity == 0 {
        return None;
    }
    let eligible = |s: &Candidate<'_>| eligible(s, wish);
    // Rows in a stable order, each with its seats by number.
    let mut rows: BTreeMap<(&str, &str), Vec<&Candidate<'_>>> = BTreeMap::new();
    for s in seats.iter().filter(|s| eligible(s)) {
        rows.entry((s.section, s.row)).or_default().push(s);
    }
    // (orphans left, summed rank, row key, first number) → seats; smallest wins.
    let mut best: Option<(Score<'_>, Vec<&Candidate<'_>>)> = None;
    for (key, row) in rows.iter_mut() {
        row.sort_by_key(|s| s.number);
        for run in runs(row) {
            if run.len() < wish.quantity {
                continue;
            }
            for start in 0..=run.len() - wish.quantity {
                let left = start;
                let right = run.len() - start - wish.quantity;
                let orphans = usize::from(left == 1) + usize::from(right == 1);
                let window = &run[start..start + wish.quantity];
                if !keeps_groups(window.iter().copied()) {
                    continue;
                }
                let rank: i64 = window.iter().map(|s| i64::from(s.rank)).sum();
                let score = (orphans, rank, *key, window[0].number);
                if best.as_ref().is_none_or(|(b, _)| score < *b) {
                    best = Some((score, window.to_vec()));
                }
            }
        }
    }
    if let Some((_, window)) = best {
        return Some(Pick {
            seat_ids: window.iter().map(|s| s.seat_id.to_owned()).collect(),
            adjacent: true,
        });
    }
    // No block fits: the best seats one by one, none of a table or a companion seat.
    let mut free: Vec<&Candidate<'_>> = seats
        .iter()
        .filter(|s| s.available && eligible(s) && s.table.is_none() && s.companion_of.is_none())
        .collect();
    if free.len() < wish.quantity {
        return None;
    }
    free.sort_by_key(|s| (s.rank, s.section, s.row, s.number));
    Some(Pick {
        seat_ids: free[..wish.quantity]
            .iter()
            .map(|s| s.seat_id.to_owned())
            .collect(),
        adjacent: false,
    })
}

/// The rows of a seat layout, worked out once per layout so that best available looks only at
/// the rows that can hold the wish, with no sorting or grouping per request: each row's seats
/// (their indices in the layout) by number, and per grade the rows that hold any of it.
/// [`pick_indexed`] over it picks exactly what [`pick`] picks over every seat (a property test
/// holds them to it), at a fraction of the cost on a stadium.
#[derive(Debug, Clone, Default)]
pub struct RowIndex {
    /// Each row's seat indices, by number; rows in (section, row) order.
    rows: Vec<Vec<usize>>,
    /// Grade → the rows (indices into `rows`) holding a seat of it, in row order.
    by_grade: HashMap<String, Vec<usize>>,
}

impl RowIndex {
    /// The rows of `seats`, each given as (section, row, number, grade).
    pub fn new<'a>(seats: impl Iterator<Item = (&'a str, &'a str, i32, &'a str)>) -> Self {
        // (section, row) → (number, seat index, grade) of each seat in it.
        type Rows<'s> = BTreeMap<(&'s str, &'s str), Vec<(i32, usize, &'s str)>>;
        let mut rows: Rows<'_> = BTreeMap::new();
        for (i, (section, row, number, grade)) in seats.enumerate() {
            rows.entry((section, row))
                .or_default()
                .push((number, i, grade));
        }
        let mut index = Self::default();
        for (r, (_, mut seats)) in rows.into_iter().enumerate() {
            seats.sort_by_key(|&(number, i, _)| (number, i));
            let mut grades: Vec<&str> = seats.iter().map(|&(_, _, g)| g).collect();
            grades.sort_unstable();
            grades.dedup();
            for g in grades {
                index.by_grade.entry(g.to_owned()).or_default().push(r);
            }
            index
                .rows
                .push(seats.into_iter().map(|(_, i, _)| i).collect());
        }
        index
    }
}

/// [`pick`] over the rows of `index`, `seat(i)` being the layout's seat `i` as it stands. When
/// no block fits it hands over to [`pick`] over every seat (which then picks them one by one).
pub fn pick_indexed<'a>(
    index: &RowIndex,
    seat: impl Fn(usize) -> Candidate<'a>,
    seats: usize,
    wish: &Wish<'_>,
) -> Option<Pick> {
    if wish.quantity == 0 {
        return None;
    }
    let eligible = |s: &Candidate<'_>| eligible(s, wish);
    let all: Vec<usize>;
    let rows: &[usize] = match wish.grade {
        Some(g) => index.by_grade.get(g).map_or(&[], Vec::as_slice),
        None => {
            all = (0..index.rows.len()).collect();
            &all
        }
    };
    let mut best: Option<(Score<'a>, Vec<usize>)> = None;
    let mut run: Vec<(usize, Candidate<'a>)> = Vec::new();
    for &r in rows {
        let Some(row) = index.rows.get(r) else {
            continue;
        };
        run.clear();
        // The runs of `runs` over the row's eligible seats.
        for &i in row {
            let s = seat(i);
            if !eligible(&s) {
                continue;
            }
            let continues = run
                .last()
                .is_some_and(|(_, prev)| s.available && s.number == prev.number + 1);
            if !continues {
                consider(&run, wish.quantity, &mut best);
                run.clear();
            }
            if s.available {
                run.push((i, s));
            }
        }
        consider(&run, wish.quantity, &mut best);
    }
    if let Some((_, window)) = best {
        return Some(Pick {
            seat_ids: window.iter().map(|&i| seat(i).seat_id.to_owned()).collect(),
            adjacent: true,
        });
    }
    let every: Vec<Candidate<'a>> = (0..seats).map(&seat).collect();
    pick(&every, wish)
}

/// The blocks of `quantity` in `run` against the best so far.
fn consider<'a>(
    run: &[(usize, Candidate<'a>)],
    quantity: usize,
    best: &mut Option<(Score<'a>, Vec<usize>)>,
) {
    if run.len() < quantity {
        return;
    }
    for start in 0..=run.len() - quantity {
        let left = start;
        let right = run.len() - start - quantity;
        let orphans = usize::from(left == 1) + usize::from(right == 1);
        let window = &run[start..start + quantity];
        if !keeps_groups(window.iter().map(|(_, s)| s)) {
            continue;
        }
        let rank: i64 = window.iter().map(|(_, s)| i64::from(s.rank)).sum();
        let first = &window[0].1;
        let score = (orphans, rank, (first.section, first.row), first.number);
        if best.as_ref().is_none_or(|(b, _)| score < *b) {
            *best = Some((score, window.iter().map(|&(i, _)| i).collect()));
        }
    }
}

/// Maximal runs of available seats with consecutive numbers in one sorted row.
fn runs<'r, 'a>(row: &'r [&'r Candidate<'a>]) -> Vec<Vec<&'r Candidate<'a>>> {
    let mut out: Vec<Vec<&Candidate<'a>>> = Vec::new();
    let mut current: Vec<&Candidate<'a>> = Vec::new();
    for s in row {
        let continues = current
            .last()
            .is_some_and(|prev| s.available && s.number == prev.number + 1);
        if !continues && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if s.available {
            current.push(s);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        section: &'static str,
        row: &'static str,
        rank: i32,
        free: &str,
    ) -> Vec<Candidate<'static>> {
        // `free`: one char per seat, 'o' free, 'x' taken; ids leak for the test's lifetime.
        free.chars()
            .enumerate()
            .map(|(i, c)| Candidate {
                seat_id: Box::leak(format!("{section}-{row}-{}", i + 1).into_boxed_str()),
                section,
                row,
                number: i as i32 + 1,
                grade: if rank < 5 { "vip" } else { "r" },
                rank,
                wheelchair: i == 0,
                table: None,
                table_size: 0,
                companion_of: None,
                available: c == 'o',
            })
            .collect()
    }

    fn ids(p: &Pick) -> Vec<&str> {
        p.seat_ids.iter().map(String::as_str).collect()
    }

    #[test]
    fn prefers_the_nearest_row() {
        let mut seats = row("A", "2", 9, "oooooo");
        seats.extend(row("A", "1", 1, "oooooo"));
        let p = pick(
            &seats,
            &Wish {
                quantity: 2,
                ..Wish::default()
            },
        )
        .unwrap();
        assert!(p.adjacent);
        assert_eq!(ids(&p), ["A-1-1", "A-1-2"]);
    }

    #[test]
    fn leaves_no_orphan_single_seat() {
        // Seats 1..=5 free: taking 1-2 or 4-5 leaves 3 seats; taking 2-3 would orphan seat 1.
        let seats = row("A", "1", 1, "ooooo");
        let p = pick(
            &seats,
            &Wish {
                quantity: 2,
                ..Wish::default()
            },
        )
        .unwrap();
        assert_eq!(ids(&p), ["A-1-1", "A-1-2"]);
        // x o o o x: 3 free; 2 of them must orphan one: still picks, with one orphan.
        let seats = row("A", "1", 1, "xooox");
        let p = pick(
            &seats,
            &Wish {
                quantity: 2,
                ..Wish::default()
            },
        )
        .unwrap();
        let got = ids(&p);
        assert!(
            got == ["A-1-2", "A-1-3"] || got == ["A-1-3", "A-1-4"],
            "two adjacent free seats: {got:?}"
        );
        // x o o o o x: taking the middle two orphans both sides; an edge pair is chosen.
        let seats = row("A", "1", 1, "xoooox");
        let p = pick(
            &seats,
            &Wish {
                quantity: 2,
                ..Wish::default()
            },
        )
        .unwrap();
        assert_eq!(ids(&p), ["A-1-2", "A-1-3"]);
    }

    #[test]
    fn prefers_a_block_without_orphans_over_a_better_rank() {
        let mut seats = row("A", "1", 1, "xooox");
        seats.extend(row("B", "1", 2, "oooo"));
        let p = pick(
            &seats,
            &Wish {
                quantity: 2,
                ..Wish::default()
            },
        )
        .unwrap();
        assert_eq!(ids(&p), ["B-1-1", "B-1-2"]);
        assert!(p.adjacent);
    }

    #[test]
    fn filters_apply() {
        let mut seats = row("A", "1", 1, "oooo");
        seats.extend(row("B", "1", 9, "oooo"));
        let w = Wish {
            quantity: 2,
            grade: Some("r"),
            ..Wish::default()
        };
        assert_eq!(ids(&pick(&seats, &w).unwrap()), ["B-1-1", "B-1-2"]);
        let w = Wish {
            quantity: 1,
            section: Some("B"),
            wheelchair: true,
            ..Wish::default()
        };
        assert_eq!(ids(&pick(&seats, &w).unwrap()), ["B-1-1"]);
        let w = Wish {
            quantity: 2,
            wheelchair: true,
            ..Wish::default()
        };
        let p = pick(&seats, &w).unwrap();
        assert!(!p.adjacent);
    }

    /// Makes seats `numbers` of `seats` one table named after the first.
    fn table(seats: &mut [Candidate<'static>], numbers: &[i32]) {
        let name = seats
            .iter()
            .find(|s| s.number == numbers[0])
            .map(|s| s.seat_id)
            .unwrap();
        for s in seats.iter_mut().filter(|s| numbers.contains(&s.number)) {
            s.table = Some(name);
            s.table_size = numbers.len();
        }
    }

    #[test]
    fn tables_go_whole_or_not_at_all() {
        // Seats 1-4 a table (best rank), 5-8 plain seats behind it in rank.
        let mut seats = row("A", "1", 1, "oooo");
        table(&mut seats, &[1, 2, 3, 4]);
        seats.extend(row("B", "1", 2, "oooo"));
        let wish = |quantity| Wish {
            quantity,
            ..Wish::default()
        };
        // The quantity of the table: the table, whole.
        assert_eq!(
            ids(&pick(&seats, &wish(4)).unwrap()),
            ["A-1-1", "A-1-2", "A-1-3", "A-1-4"]
        );
        // Any other: never a table seat, not even one by one.
        assert_eq!(ids(&pick(&seats, &wish(2)).unwrap()), ["B-1-1", "B-1-2"]);
        assert_eq!(pick(&seats, &wish(5)), None);
        let p = pick(&seats, &wish(3)).unwrap();
        assert!(p.seat_ids.iter().all(|s| s.starts_with("B-")), "{p:?}");
        // A taken table seat takes the whole table off the market.
        seats[1].available = false;
        assert_eq!(
            ids(&pick(&seats, &wish(4)).unwrap()),
            ["B-1-1", "B-1-2", "B-1-3", "B-1-4"]
        );
    }

    #[test]
    fn a_companion_seat_comes_only_with_its_wheelchair_seat() {
        // A-1-1 wheelchair (row()), A-1-2 its companion; A-1-3, A-1-4 plain.
        let mut seats = row("A", "1", 1, "oooo");
        seats[1].companion_of = Some("A-1-1");
        let wish = |quantity| Wish {
            quantity,
            ..Wish::default()
        };
        assert_eq!(ids(&pick(&seats, &wish(2)).unwrap()), ["A-1-1", "A-1-2"]);
        // Without the wheelchair seat the companion is never picked, block or one by one.
        seats[0].available = false;
        assert_eq!(ids(&pick(&seats, &wish(2)).unwrap()), ["A-1-3", "A-1-4"]);
        assert_eq!(pick(&seats, &wish(3)), None);
        let p = pick(&seats, &wish(1)).unwrap();
        assert_ne!(ids(&p), ["A-1-2"]);
    }

    #[test]
    fn falls_back_to_single_seats_then_gives_up() {
        let seats = row("A", "1", 1, "oxoxo");
        let p = pick(
            &seats,
            &Wish {
                quantity: 3,
                ..Wish::default()
            },
        )
        .unwrap();
        assert!(!p.adjacent);
        assert_eq!(p.seat_ids.len(), 3);
        assert!(
            pick(
                &seats,
                &Wish {
                    quantity: 4,
                    ..Wish::default()
                }
            )
            .is_none()
        );
        assert!(
            pick(
                &seats,
                &Wish {
                    quantity: 0,
                    ..Wish::default()
                }
            )
            .is_none()
        );
    }
}

#[cfg(test)]
mod indexed {
    use proptest::prelude::*;

    use super::*;

    /// A seat of a generated layout: section, row, number, grade, rank, wheelchair, available,
    /// and how it is grouped (0: a table of 2 with the next seat of its row, 1: a table of 3,
    /// 2: companion of the seat before it, when that one is a wheelchair seat; else nothing).
    type Gen = (u8, u8, i32, u8, i32, bool, bool, u8);

    fn layout() -> impl Strategy<Value = Vec<Gen>> {
        // Few sections, rows and grades so rows mix grades and blocks compete; numbers with
        // gaps (so tables are not always side by side); unique (section, row, number).
        prop::collection::vec(
            (
                0u8..3,
                0u8..4,
                1i32..14,
                0u8..3,
                0i32..6,
                any::<bool>(),
                prop::bool::weighted(0.7),
                0u8..8,
            ),
            0..120,
        )
        .prop_map(|mut seats| {
            seats.sort_by_key(|s| (s.0, s.1, s.2));
            seats.dedup_by_key(|s| (s.0, s.1, s.2));
            seats
        })
    }

    /// Each seat's (table, companion_of) as indices into `seats`, from the grouping draws.
    fn groups(seats: &[Gen]) -> Vec<(Option<usize>, Option<usize>)> {
        let mut out = vec![(None, None); seats.len()];
        let same_row = |a: usize, b: usize| seats[a].0 == seats[b].0 && seats[a].1 == seats[b].1;
        for i in 0..seats.len() {
            let size = match seats[i].7 {
                0 => 2,
                1 => 3,
                _ => 0,
            };
            let members: Vec<usize> = (i..(i + size).min(seats.len())).collect();
            if size > 0
                && members.len() == size
                && members
                    .iter()
                    .all(|&m| same_row(i, m) && out[m] == (None, None))
            {
                for m in members {
                    out[m].0 = Some(i);
                }
            } else if seats[i].7 == 2
                && i > 0
                && same_row(i - 1, i)
                && seats[i - 1].5
                && !seats[i].5
                && out[i] == (None, None)
                && out[i - 1] == (None, None)
            {
                out[i].1 = Some(i - 1);
            }
        }
        out
    }

    proptest! {
        /// Over the index, best available picks exactly what it picks over every seat, and
        /// neither splits a table or leaves a companion seat without its wheelchair seat.
        #[test]
        fn the_index_picks_what_a_scan_of_every_seat_picks(
            seats in layout(),
            quantity in 0usize..6,
            grade in prop::option::of(0u8..4),
            section in prop::option::of(0u8..4),
            wheelchair in prop::bool::weighted(0.1),
        ) {
            let names: Vec<(String, String, String, String)> = seats
                .iter()
                .map(|s| (format!("S{}", s.0), format!("R{}", s.1), format!("g{}", s.3), format!("S{}-R{}-{}", s.0, s.1, s.2)))
                .collect();
            let grouped = groups(&seats);
            let table_size = |t: usize| grouped.iter().filter(|g| g.0 == Some(t)).count();
            let candidates: Vec<Candidate<'_>> = seats
                .iter()
                .zip(&names)
                .zip(&grouped)
                .map(|((s, (sec, row, grade, id)), &(table, companion))| Candidate {
                    seat_id: id,
                    section: sec,
                    row,
                    number: s.2,
                    grade,
                    rank: s.4,
                    wheelchair: s.5,
                    table: table.map(|t| names[t].3.as_str()),
                    table_size: table.map_or(0, table_size),
                    companion_of: companion.map(|c| names[c].3.as_str()),
                    available: s.6,
                })
                .collect();
            let index = RowIndex::new(candidates.iter().map(|c| (c.section, c.row, c.number, c.grade)));
            let grade = grade.map(|g| format!("g{g}"));
            let section = section.map(|s| format!("S{s}"));
            let wish = Wish {
                quantity,
                grade: grade.as_deref(),
                section: section.as_deref(),
                wheelchair,
            };
            let scanned = pick(&candidates, &wish);
            let indexed = pick_indexed(&index, |i| candidates[i].clone(), candidates.len(), &wish);
            prop_assert_eq!(&indexed, &scanned);
            if let Some(p) = indexed {
                let picked: std::collections::HashSet<&str> =
                    p.seat_ids.iter().map(String::as_str).collect();
                prop_assert_eq!(picked.len(), quantity);
                for c in candidates.iter().filter(|c| picked.contains(c.seat_id)) {
                    prop_assert!(c.available);
                    if let Some(t) = c.table {
                        // The whole table and nothing else.
                        prop_assert_eq!(c.table_size, quantity);
                        prop_assert!(candidates
                            .iter()
                            .filter(|o| o.table == Some(t))
                            .all(|o| picked.contains(o.seat_id)));
                    }
                    if let Some(chair) = c.companion_of {
                        prop_assert!(picked.contains(chair), "{} without {}", c.seat_id, chair);
                    }
                }
            }
        }
    }
}
