//! The in-process transport for standalone mode: Kafka's model (topics of keyed partitions,
//! append-only logs with offsets, consumer groups with committed offsets) kept in memory and
//! shared by every service of the process.
//!
//! - A topic has a fixed number of partitions; an envelope goes to the partition chosen by a
//!   stable hash (FNV-1a) of its key, so events of one key stay in order.
//! - A consumer group keeps its committed offsets here, not in the subscription: dropping a
//!   subscription and subscribing again resumes after the last commit, and whatever was delivered
//!   but not committed is delivered again.
//! - The partitions of a topic are split round-robin among the group's live members. A member
//!   gives up a partition only when it asks for its next delivery (or is dropped), so one message
//!   is never in the hands of two members of a group at once.
//! - Waiting members are woken through a [`Notify`], never by polling.
//! - Retention: a message older than the retention (10 minutes by default) is dropped once every
//!   group of its topic has committed it, and at once when its topic has no group; its offset
//!   stays, so positions never shift. A group that joins later starts after it.
//! - Not durable: everything dies with the process. The relay therefore asks
//!   [`Transport::consumed_below`] which messages every group of a topic has committed, and
//!   publishes the rest again after a restart. The answer is known only once the launcher has
//!   [`MemoryTransport::seal`]ed the set of groups (every consumer announced by
//!   [`Transport::register_group`]); before that it is `None`.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::envelope::Envelope;
use async_trait::async_trait;
use tokio::sync::Notify;

use super::{BusError, Delivery, Receipt, Subscription, Transport};

/// A topic and one of its partitions.
type PartitionId = (String, i32);

/// In-process transport; clones share the same topics and groups.
#[derive(Clone)]
pub struct MemoryTransport {
    inner: Arc<Inner>,
}

struct Inner {
    partitions: i32,
    retention: Duration,
    state: Mutex<State>,
    /// Fired on every publish and every membership or ownership change.
    changed: Notify,
    /// Every consumer group has been announced: commits can settle messages.
    sealed: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Topic → partitions → log.
    topics: HashMap<String, Vec<PartitionLog>>,
    groups: HashMap<String, Group>,
    next_member: u64,
}

#[derive(Default)]
struct Group {
    /// Every topic the group was announced for or subscribed to, live members or not.
    topics: BTreeSet<String>,
    /// Next offset to read per partition.
    committed: HashMap<PartitionId, i64>,
    /// Live members in join order.
    members: Vec<Member>,
    /// The member currently reading each partition.
    owners: HashMap<PartitionId, u64>,
}

/// One partition's messages; a slot's envelope is dropped once retention allows.
#[derive(Default)]
struct PartitionLog {
    slots: Vec<Slot>,
    /// Every offset below this has been dropped.
    dropped_below: usize,
}

struct Slot {
    published: Instant,
    envelope: Option<Envelope>,
}

struct Member {
    id: u64,
    topics: Vec<String>,
}

impl Group {
    /// The partitions `member` should read: for each of its topics, every n-th partition, where
    /// n is the number of members subscribed to that topic.
    fn target(&self, member: u64, topic_partitions: &dyn Fn(&str) -> i32) -> BTreeSet<PartitionId> {
        let mut out = BTreeSet::new();
        let Some(me) = self.members.iter().find(|m| m.id == member) else {
            return out;
        };
        for topic in &me.topics {
            let readers: Vec<u64> = self
                .members
                .iter()
                .filter(|m| m.topics.contains(topic))
                .map(|m| m.id)
                .collect();
            let Some(index) = readers.iter().position(|id| *id == member) else {
                continue;
            };
            let count = readers.len();
            for partition in 0..topic_partitions(topic) {
                if usize::try_from(partition).is_ok_and(|p| p % count == index) {
                    out.insert((topic.clone(), partition));
                }
            }
        }
        out
    }
}

/// FNV-1a: stable across processes and runs, unlike std's `RandomState`.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// The partition (of `partitions`) that `key` goes to.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let partitions = u32::try_from(partitions.max(1)).unwrap_or(1);
    // The remainder is below `partitions`, which came from an i32.
    i32::try_from(fnv1a(key.as_bytes()) % partitions).unwrap_or(0)
}

impl MemoryTransport {
    /// New transport with `partitions` per topic (at least 1) and the default retention.
    pub fn new(partitions: i32) -> Self {
        Self::with_retention(partitions, Duration::from_secs(600))
    }

    /// New transport that drops consumed messages older than `retention`.
    pub fn with_retention(partitions: i32, retention: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                partitions: partitions.max(1),
                retention,
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                sealed: AtomicBool::new(false),
            }),
        }
    }

    /// Declares that every consumer group has been announced (standalone calls it once every
    /// service has started), so [`Transport::consumed_below`] can answer.
    pub fn seal(&self) {
        self.inner.sealed.store(true, Ordering::SeqCst);
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data (every mutation is a
        // single step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn topic(&mut self, name: &str, partitions: i32) -> &mut Vec<PartitionLog> {
        self.topics
            .entry(name.to_owned())
            .or_insert_with(|| (0..partitions).map(|_| PartitionLog::default()).collect())
    }

    /// The lowest offset of `partition` that some group of its topic has not committed; `None`
    /// when no group reads the topic.
    fn committed_floor(&self, partition: &PartitionId) -> Option<i64> {
        let (topic, _) = partition;
        let mut floor: Option<i64> = None;
        for group in self.groups.values() {
            let committed = group.committed.get(partition).copied();
            if group.topics.contains(topic) || committed.is_some() {
                let c = committed.unwrap_or(0);
                floor = Some(floor.map_or(c, |f| f.min(c)));
            }
        }
        floor
    }

    /// Drops the messages of `partition` that are older than `retention` and that every group
    /// reading its topic has committed (all of them when no group reads it).
    fn drop_expired(&mut self, partition: &PartitionId, retention: Duration) {
        let (topic, index) = partition;
        let floor = match self.committed_floor(partition) {
            Some(f) => usize::try_from(f).unwrap_or(0),
            None => usize::MAX,
        };
        let Some(log) = self
            .topics
            .get_mut(topic)
            .and_then(|parts| parts.get_mut(usize::try_from(*index).ok()?))
        else {
            return;
        };
        let upto = floor.min(log.slots.len());
        let now = Instant::now();
        while log.dropped_below < upto {
            let slot = &mut log.slots[log.dropped_below];
            if now.duration_since(slot.published) < retention {
                break;
            }
            slot.envelope = None;
            log.dropped_below += 1;
        }
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        let mut state = self.inner.state();
        for topic in topics {
            state.topic(topic, self.inner.partitions);
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<Receipt, BusError> {
        let partition = partition_for(&envelope.key, self.inner.partitions);
        let offset = {
            let mut state = self.inner.state();
            let log = state.topic(topic, self.inner.partitions);
            let slot = usize::try_from(partition).unwrap_or(0);
            let offset = match log.get_mut(slot) {
                Some(partition_log) => {
                    partition_log.slots.push(Slot {
                        published: Instant::now(),
                        envelope: Some(envelope.clone()),
                    });
                    partition_log.slots.len() - 1
                }
                None => {
                    return Err(BusError::Transport(format!(
                        "no partition {slot} in {topic}"
                    )));
                }
            };
            // Topics nobody reads age out here; read ones also when a group commits.
            state.drop_expired(&(topic.to_owned(), partition), self.inner.retention);
            offset
        };
        self.inner.changed.notify_waiters();
        Ok(Receipt {
            partition,
            offset: i64::try_from(offset).unwrap_or(i64::MAX),
        })
    }

    fn durable(&self) -> bool {
        false
    }

    fn register_group(&self, group: &str, topics: &[&str]) {
        let mut state = self.inner.state();
        for topic in topics {
            state.topic(topic, self.inner.partitions);
        }
        let entry = state.groups.entry(group.to_owned()).or_default();
        entry.topics.extend(topics.iter().map(|t| (*t).to_owned()));
    }

    fn consumed_below(&self, topic: &str, partition: i32) -> Option<i64> {
        if !self.inner.sealed.load(Ordering::SeqCst) {
            return None;
        }
        let state = self.inner.state();
        Some(
            state
                .committed_floor(&(topic.to_owned(), partition))
                .unwrap_or(i64::MAX),
        )
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        let member = {
            let mut state = self.inner.state();
            for topic in topics {
                state.topic(topic, self.inner.partitions);
            }
            state.next_member += 1;
            let id = state.next_member;
            let entry = state.groups.entry(group.to_owned()).or_default();
            entry.topics.extend(topics.iter().map(|t| (*t).to_owned()));
            entry.members.push(Member {
                id,
                topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            });
            id
        };
        // Existing members give up the partitions that now belong to the newcomer.
        self.inner.changed.notify_waiters();
        Ok(Box::new(MemorySubscription {
            inner: Arc::clone(&self.inner),
            group: group.to_owned(),
            member,
            positions: HashMap::new(),
            cursor: 0,
        }))
    }
}

/// One member of a consumer group on a [`MemoryTransport`].
struct MemorySubscription {
    inner: Arc<Inner>,
    group: String,
    member: u64,
    /// Next offset to deliver, per partition this member owns.
    positions: HashMap<PartitionId, i64>,
    /// Where the round-robin over owned partitions resumes.
    cursor: usize,
}

impl MemorySubscription {
    /// Settles ownership with the current assignment and takes the next message, if any.
    /// Returns whether ownership changed (others may be waiting for a released partition).
    fn poll(&mut self, state: &mut State) -> (Option<Delivery>, bool) {
        let State { topics, groups, .. } = state;
        let Some(group) = groups.get_mut(&self.group) else {
            return (None, false);
        };
        let count = |topic: &str| -> i32 {
            topics
                .get(topic)
                .map_or(0, |p| i32::try_from(p.len()).unwrap_or(i32::MAX))
        };
        let target = group.target(self.member, &count);
        let mut changed = false;

        // Release what is no longer ours; take what is ours and free.
        let member = self.member;
        let released: Vec<PartitionId> = group
            .owners
            .iter()
            .filter(|(p, owner)| **owner == member && !target.contains(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for partition in released {
            group.owners.remove(&partition);
            self.positions.remove(&partition);
            changed = true;
        }
        for partition in &target {
            if !group.owners.contains_key(partition) {
                group.owners.insert(partition.clone(), member);
                let start = group.committed.get(partition).copied().unwrap_or(0);
                self.positions.insert(partition.clone(), start);
                changed = true;
            }
        }

        let mut owned: Vec<&PartitionId> = self.positions.keys().collect();
        owned.sort();
        let n = owned.len();
        for step in 0..n {
            let index = (self.cursor + step) % n;
            let (topic, partition) = owned[index];
            let log = topics
                .get(topic)
                .and_then(|parts| parts.get(usize::try_from(*partition).ok()?));
            // Messages dropped by retention are skipped, as Kafka skips to its earliest offset.
            let dropped = log.map_or(0, |l| i64::try_from(l.dropped_below).unwrap_or(i64::MAX));
            let position = self.positions[owned[index]].max(dropped);
            let Some(envelope) = log
                .and_then(|l| l.slots.get(usize::try_from(position).ok()?))
                .and_then(|slot| slot.envelope.as_ref())
            else {
                continue;
            };
            let delivery = Delivery {
                topic: topic.clone(),
                partition: *partition,
                offset: position,
                envelope: envelope.clone(),
            };
            let key = owned[index].clone();
            self.positions.insert(key, position + 1);
            self.cursor = index + 1;
            return (Some(delivery), changed);
        }
        (None, changed)
    }
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        let inner = Arc::clone(&self.inner);
        loop {
            // Register for a wakeup before looking, so a publish in between is not missed.
            let notified = inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (delivery, changed) = {
                let mut state = inner.state();
                self.poll(&mut state)
            };
            if changed {
                inner.changed.notify_waiters();
            }
            if let Some(delivery) = delivery {
                return Ok(delivery);
            }
            notified.await;
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let mut state = self.inner.state();
        let group = state.groups.entry(self.group.clone()).or_default();
        let next = delivery.offset + 1;
        let committed = group
            .committed
            .entry((delivery.topic.clone(), delivery.partition))
            .or_insert(0);
        *committed = (*committed).max(next);
        state.drop_expired(
            &(delivery.topic.clone(), delivery.partition),
            self.inner.retention,
        );
        Ok(())
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        {
            let mut state = self.inner.state();
            if let Some(group) = state.groups.get_mut(&self.group) {
                let member = self.member;
                group.members.retain(|m| m.id != member);
                group.owners.retain(|_, owner| *owner != member);
            }
        }
        // The remaining members take over this member's partitions.
        self.inner.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{MemoryTransport, partition_for};
    use crate::bus::Transport;

    fn envelope(key: &str, n: i64) -> super::Envelope {
        super::Envelope {
            id: uuid::Uuid::now_v7(),
            event_type: "test".into(),
            version: 1,
            occurred_at: chrono::Utc::now(),
            key: key.into(),
            payload: serde_json::json!({ "n": n }),
        }
    }

    #[tokio::test]
    async fn consumed_messages_past_retention_are_dropped_without_shifting_offsets() {
        let bus = MemoryTransport::with_retention(1, Duration::ZERO);
        let mut a = bus.subscribe("a", &["t"]).await.unwrap();
        let mut b = bus.subscribe("b", &["t"]).await.unwrap();
        for n in 0..3 {
            bus.publish("t", &envelope("k", n)).await.unwrap();
        }
        for sub in [&mut a, &mut b] {
            for _ in 0..2 {
                let d = sub.next().await.unwrap();
                sub.commit(&d).await.unwrap();
            }
        }
        {
            let state = bus.inner.state();
            let log = &state.topics["t"][0];
            assert_eq!(log.dropped_below, 2, "both groups committed 0 and 1");
            assert!(log.slots[0].envelope.is_none() && log.slots[2].envelope.is_some());
        }
        // Offsets did not move, and a late group starts after what was dropped.
        assert_eq!(a.next().await.unwrap().offset, 2);
        let mut late = bus.subscribe("late", &["t"]).await.unwrap();
        let first = late.next().await.unwrap();
        assert_eq!(
            (first.offset, first.envelope.payload["n"].as_i64()),
            (2, Some(2))
        );
    }

    #[tokio::test]
    async fn nothing_is_dropped_while_a_group_lags_or_within_retention() {
        let bus = MemoryTransport::with_retention(1, Duration::ZERO);
        bus.register_group("slow", &["t"]); // announced, not yet subscribed
        let mut fast = bus.subscribe("fast", &["t"]).await.unwrap();
        bus.publish("t", &envelope("k", 0)).await.unwrap();
        let d = fast.next().await.unwrap();
        fast.commit(&d).await.unwrap();
        assert_eq!(
            bus.inner.state().topics["t"][0].dropped_below,
            0,
            "slow has not read it"
        );

        let kept = MemoryTransport::new(1);
        kept.publish("t", &envelope("k", 0)).await.unwrap();
        let mut only = kept.subscribe("only", &["t"]).await.unwrap();
        let d = only.next().await.unwrap();
        only.commit(&d).await.unwrap();
        assert_eq!(
            kept.inner.state().topics["t"][0].dropped_below,
            0,
            "younger than retention"
        );
    }

    #[tokio::test]
    async fn a_topic_without_a_group_ages_out_on_publish() {
        let bus = MemoryTransport::with_retention(1, Duration::ZERO);
        for n in 0..3 {
            bus.publish("unread", &envelope("k", n)).await.unwrap();
        }
        assert_eq!(bus.inner.state().topics["unread"][0].dropped_below, 3);
        let kept = MemoryTransport::new(1);
        kept.publish("unread", &envelope("k", 0)).await.unwrap();
        assert_eq!(
            kept.inner.state().topics["unread"][0].dropped_below,
            0,
            "younger than retention"
        );
    }

    #[tokio::test]
    async fn consumed_below_is_known_once_sealed_and_counts_announced_groups() {
        let bus = MemoryTransport::new(1);
        for n in 0..3 {
            bus.publish("t", &envelope("k", n)).await.unwrap();
        }
        bus.register_group("a", &["t"]);
        bus.register_group("b", &["t"]);
        assert_eq!(bus.consumed_below("t", 0), None, "not sealed");
        bus.seal();
        assert_eq!(bus.consumed_below("t", 0), Some(0), "nobody committed");
        assert_eq!(bus.consumed_below("nobody-reads", 0), Some(i64::MAX));
        let mut a = bus.subscribe("a", &["t"]).await.unwrap();
        for _ in 0..2 {
            let d = a.next().await.unwrap();
            a.commit(&d).await.unwrap();
        }
        assert_eq!(
            bus.consumed_below("t", 0),
            Some(0),
            "b has not read anything"
        );
        let mut b = bus.subscribe("b", &["t"]).await.unwrap();
        let d = b.next().await.unwrap();
        b.commit(&d).await.unwrap();
        assert_eq!(bus.consumed_below("t", 0), Some(1));
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        // Pinned values: a changed hash would reorder events of live keys across a restart.
        let pinned = [
            ("", 1, 2),
            ("a", 0, 5),
            ("perf-1", 0, 3),
            ("perf-2", 1, 4),
            ("order-9", 1, 3),
            ("x", 3, 4),
        ];
        for (key, of_4, of_7) in pinned {
            assert_eq!(partition_for(key, 4), of_4, "{key:?} of 4");
            assert_eq!(partition_for(key, 7), of_7, "{key:?} of 7");
        }
        assert_eq!(partition_for("anything", 1), 0);
        assert_eq!(partition_for("anything", 0), 0);
    }
}
