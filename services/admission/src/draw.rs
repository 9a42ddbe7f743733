//! The verifiable draw that orders the pre-queue at the opening.
//!
//! - Each room gets a random 32-byte **seed** when it is created; its **commitment**,
//!   `SHA-256(seed)` in lower-case hex, is published from then on
//!   (`GET /api/v1/performances/{id}/queue/draw`), before anyone can join.
//! - Each pre-queue place is known publicly by its **reference**, `SHA-256(queue_token)` (the
//!   token's UTF-8 text as the fan received it), so a fan finds their own entry without anyone
//!   learning their token or account.
//! - At the opening the pre-queue is closed and its members are ordered by the **draw key**
//!   `SHA-256(seed ‖ reference)` (the 32 seed bytes followed by the 32 reference bytes),
//!   ascending as bytes; equal keys (never seen in practice) by reference.
//! - After the draw the seed itself is published with the list of references, so anyone can
//!   check `SHA-256(seed)` against the commitment and recompute the whole order.
//!
//! Sorting by a keyed hash is a uniformly random permutation as long as the seed is secret until
//! the list is closed, and it is a permutation by construction: every reference appears exactly
//! once in the order.

use sha2::{Digest, Sha256};

/// A 32-byte digest.
pub type Digest32 = [u8; 32];

/// A fresh random seed.
pub fn new_seed() -> Digest32 {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
    seed
}

/// `SHA-256(seed)`, published before the opening.
pub fn commitment(seed: &[u8]) -> Digest32 {
    Sha256::digest(seed).into()
}

/// The public reference of a place: `SHA-256(queue_token)`.
pub fn reference(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

/// The draw key of `reference` under `seed`: `SHA-256(seed ‖ reference)`.
pub fn key(seed: &[u8], reference: &Digest32) -> Digest32 {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(reference);
    h.finalize().into()
}

/// The indices of `references` in draw order under `seed`.
pub fn order(seed: &[u8], references: &[Digest32]) -> Vec<usize> {
    let mut keyed: Vec<(Digest32, Digest32, usize)> = references
        .iter()
        .enumerate()
        .map(|(i, r)| (key(seed, r), *r, i))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_a_permutation_that_anyone_recomputes() {
        let seed = new_seed();
        let refs: Vec<Digest32> = (0..2_000).map(|i| reference(&format!("t{i}"))).collect();
        let a = order(&seed, &refs);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..refs.len()).collect::<Vec<_>>(), "a permutation");
        // The same seed and references in another order give the same order of references.
        let mut shuffled = refs.clone();
        shuffled.reverse();
        let b = order(&seed, &shuffled);
        let by_ref = |o: &[usize], r: &[Digest32]| o.iter().map(|i| r[*i]).collect::<Vec<_>>();
        assert_eq!(by_ref(&a, &refs), by_ref(&b, &shuffled));
        // Another seed, another order; and it is no longer the joining order.
        assert_ne!(order(&new_seed(), &refs), a);
        assert_ne!(a, (0..refs.len()).collect::<Vec<_>>());
        assert_eq!(commitment(&seed), <Digest32>::from(Sha256::digest(seed)));
    }
}
