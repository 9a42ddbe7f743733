//! Best available: picks `quantity` free seats for a buyer who did not choose them — adjacent in
//! one row, leaving no orphan single seat beside the block, nearest the field or stage (lowest
//! rank), with optional grade, section and wheelchair filters.

use std::collections::BTreeMap;

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
    /// On sale right now.
    pub available: bool,
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
    let eligible = |s: &Candidate<'_>| {
        wish.grade.is_none_or(|g| g == s.grade)
            && wish.section.is_none_or(|sec| sec == s.section)
            && (!wish.wheelchair || s.wheelchair)
    };
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
    // No block fits: the best seats one by one.
    let mut free: Vec<&Candidate<'_>> = seats
        .iter()
        .filter(|s| s.available && eligible(s))
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
