//! Which agent an automatic mode offers the next attention to. Pure, so each
//! mode's order is tested without a database.

use chrono::{DateTime, Utc};

use crate::admin::AssignmentMode;

/// An agent who could take offers: available, connected, in the campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// Open attentions (every campaign) plus offers pending to the agent.
    pub load: u64,
    /// Maximum open attentions when taking this campaign's.
    pub capacity: u64,
    pub last_offered_at: Option<DateTime<Utc>>,
}

impl Candidate {
    pub fn has_room(&self) -> bool {
        self.load < self.capacity
    }
}

/// The candidate to offer to, among those with room who have not `refused`
/// this attention recently; none when nobody can take it now.
/// - least busy: fewest open and offered, then the longest without an offer;
/// - round robin: the longest without an offer (never offered first);
/// - random: uniformly among those who can take it.
///
/// Ties end on the agent id, so the order is the same on every replica.
pub fn choose(
    mode: AssignmentMode,
    candidates: &[Candidate],
    refused: impl Fn(&str) -> bool,
    random: impl FnOnce(usize) -> usize,
) -> Option<usize> {
    let eligible = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.has_room() && !refused(&c.id));
    match mode {
        AssignmentMode::LeastBusy => eligible
            .min_by(|(_, a), (_, b)| {
                (a.load, a.last_offered_at, &a.id).cmp(&(b.load, b.last_offered_at, &b.id))
            })
            .map(|(i, _)| i),
        AssignmentMode::RoundRobin => eligible
            .min_by(|(_, a), (_, b)| (a.last_offered_at, &a.id).cmp(&(b.last_offered_at, &b.id)))
            .map(|(i, _)| i),
        AssignmentMode::Random => {
            let eligible: Vec<usize> = eligible.map(|(i, _)| i).collect();
            match eligible.len() {
                0 => None,
                n => eligible.get(random(n)).copied(),
            }
        }
        AssignmentMode::Manual | AssignmentMode::OfferToAll => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents(loads: &[(&str, u64, u64, Option<i64>)]) -> Vec<Candidate> {
        loads
            .iter()
            .map(|&(id, load, capacity, offered)| Candidate {
                id: id.into(),
                load,
                capacity,
                last_offered_at: offered.and_then(|s| DateTime::from_timestamp(s, 0)),
            })
            .collect()
    }

    /// Offers `n` attentions in turn, as the router does, and returns who got them.
    fn offer(mode: AssignmentMode, mut candidates: Vec<Candidate>, n: usize) -> Vec<String> {
        let mut order = Vec::new();
        let mut seed = 0;
        for clock in 0..n {
            let Some(i) = choose(
                mode,
                &candidates,
                |_| false,
                |len| {
                    seed += 1;
                    (seed * 7) % len
                },
            ) else {
                break;
            };
            let chosen = &mut candidates[i];
            chosen.load += 1;
            chosen.last_offered_at = DateTime::from_timestamp(1_000 + clock as i64, 0);
            order.push(chosen.id.clone());
        }
        order
    }

    #[test]
    fn least_busy_fills_the_emptiest_first() {
        let candidates = agents(&[
            ("ana", 2, 3, Some(5)),
            ("luis", 0, 2, Some(9)),
            ("marta", 1, 3, None),
        ]);
        assert_eq!(
            offer(AssignmentMode::LeastBusy, candidates, 10),
            // luis (0); marta (1, never offered) before luis (1, just
            // offered); luis again (1); ana before marta at 2 (offered
            // longer ago); then everyone is full.
            ["luis", "marta", "luis", "ana", "marta"]
        );
    }

    #[test]
    fn round_robin_takes_turns_from_the_longest_unoffered() {
        let candidates = agents(&[
            ("ana", 0, 2, Some(5)),
            ("luis", 0, 2, None),
            ("marta", 0, 1, Some(3)),
        ]);
        assert_eq!(
            offer(AssignmentMode::RoundRobin, candidates, 10),
            ["luis", "marta", "ana", "luis", "ana"]
        );
    }

    #[test]
    fn random_picks_only_among_agents_with_room() {
        let candidates = agents(&[
            ("ana", 3, 3, None),
            ("luis", 0, 1, None),
            ("marta", 0, 1, None),
        ]);
        let mut order = offer(AssignmentMode::Random, candidates, 10);
        order.sort();
        assert_eq!(order, ["luis", "marta"]);
    }

    #[test]
    fn an_agent_who_refused_is_skipped() {
        let candidates = agents(&[("ana", 0, 3, None), ("luis", 1, 3, None)]);
        let chosen = choose(
            AssignmentMode::LeastBusy,
            &candidates,
            |id| id == "ana",
            |_| 0,
        );
        assert_eq!(chosen, Some(1));
        let nobody = choose(AssignmentMode::RoundRobin, &candidates, |_| true, |_| 0);
        assert_eq!(nobody, None);
    }

    #[test]
    fn manual_and_offer_to_all_choose_nobody() {
        let candidates = agents(&[("ana", 0, 3, None)]);
        for mode in [AssignmentMode::Manual, AssignmentMode::OfferToAll] {
            assert_eq!(choose(mode, &candidates, |_| false, |_| 0), None);
        }
    }
}
