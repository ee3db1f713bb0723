//! Dispatch: claim due messages in batches under a lease, render them, hand them to their
//! channel's provider, and finalize with a fenced update. No database transaction is open while
//! a provider is called: claim, mark-sending and finalize are each their own short transaction.

pub mod policy;
pub mod retry;

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use rand::Rng;
use tracing::Instrument;

use crate::channels::{ChannelKind, Channels, Outgoing, PushDevice, Rendered, SendOutcome};
use crate::clock::{InstantExt, SharedClock};
use crate::members::Member;
use crate::plan::consent::ConsentPolicy;
use crate::plan::{self, address};
use crate::render::TemplateSet;
use crate::render::context;
use crate::store::{Claimed, Finalize, Store, Suppression};
use crate::triggers;
use retry::RetryPolicy;

/// Everything a worker needs; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    pub store: Store,
    pub channels: Arc<Channels>,
    pub templates: Arc<TemplateSet>,
    pub clock: SharedClock,
    /// This instance's id: the lease owner on every claim.
    pub owner: String,
    pub batch_size: u32,
    pub concurrency: usize,
    pub lease: jiff::SignedDuration,
    pub retry: RetryPolicy,
    pub programme_name: String,
    pub default_locale: String,
    pub default_zone: String,
    /// Channels whose unknown outcomes are retried rather than left ambiguous.
    pub retry_ambiguous: Vec<crate::channels::ChannelKind>,
    /// Once cancelled, no new group of a batch is started; the rest is handed back.
    pub stop: tokio_util::sync::CancellationToken,
    /// Collisions, quiet hours and frequency caps.
    /// The settings in force: each batch takes the current rules, journeys and caps.
    pub settings: crate::config::Live,
    /// Coupon signing and pool thresholds.
    pub coupons: Arc<crate::coupons::Coupons>,
    /// What each purpose needs before it is sent (`[consent]`).
    pub consent: ConsentPolicy,
    /// A test seam: awaited with a group's ids after it is prepared and before it is marked
    /// `sending` (an opt-out arriving mid-dispatch). `None` in the daemon.
    pub before_sending: Option<BeforeSending>,
    /// A measuring seam: called with each provider round trip (the route's send, rate limit
    /// and failover included). `None` in the daemon; the benchmarks collect latencies with it.
    pub on_sent: Option<OnSent>,
}

/// See [`Dispatcher::on_sent`].
pub type OnSent = Arc<dyn Fn(std::time::Duration) + Send + Sync>;

/// How many groups of a batch are with the providers at once (see [`Dispatcher::step`]).
const GROUPS_IN_FLIGHT: usize = 2;

/// How many groups are in flight at once and how many sends each holds: never more than
/// `concurrency` sends in all; with `concurrency` 1 a single group of one (a provider that must be
/// served one message at a time).
fn groups_in_flight(concurrency: usize) -> (usize, usize) {
    if concurrency < GROUPS_IN_FLIGHT { (1, 1) } else { (GROUPS_IN_FLIGHT, concurrency / GROUPS_IN_FLIGHT) }
}

/// Awaits the test seam, if any, with a group's ids.
async fn marks_hook(d: &Dispatcher, marks: &[(i64, u32, ChannelKind, String)]) {
    if let Some(hook) = &d.before_sending {
        hook(marks.iter().map(|m| m.0).collect()).await;
    }
}

/// Runs `work` and, beside it, `renew` every `every` until `work` is done. Both are polled
/// together: a renewal waiting on rows that `work` holds in an open transaction (the lease
/// renewal's UPDATE behind a group's mark-sending) must not stop `work` from committing it, or
/// each waits for the other forever, where the database cannot see it. A renewal in progress
/// when `work` ends is finished, never cut off mid-statement.
async fn while_renewing<T, R: Future<Output = ()>>(
    every: std::time::Duration,
    work: impl Future<Output = T>,
    mut renew: impl FnMut() -> R,
) -> T {
    let done = tokio_util::sync::CancellationToken::new();
    let renewals = async {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = done.cancelled() => return,
                _ = tick.tick() => renew().await,
            }
        }
    };
    let work = async {
        let out = work.await;
        done.cancel();
        out
    };
    tokio::join!(work, renewals).0
}

/// See [`Dispatcher::before_sending`].
pub type BeforeSending = Arc<dyn Fn(Vec<i64>) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// What one step of the worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing was due.
    Idle,
    /// A batch of this many messages was processed.
    Worked(usize),
}

impl Dispatcher {
    /// Claims one batch of due messages and sees each to its next state.
    pub async fn step(&self) -> anyhow::Result<Step> {
        let now = self.clock.now();
        let lease_until = now.plus(self.lease);
        let claimed = self.store.claim(&self.owner, now, lease_until, self.batch_size).await?;
        if claimed.is_empty() {
            return Ok(Step::Idle);
        }
        let n = claimed.len();
        let mut ids: Vec<i64> = claimed.iter().map(|c| c.member_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let members: HashMap<i64, Member> =
            self.store.members_by_ids(&ids).await?.into_iter().map(|m| (m.id, m)).collect();
        let templates = self.templates.current();
        let reach = self.reach(&claimed, &members, &ids).await?;
        // A rule or journey disabled since its message was planned sends nothing more (the
        // disable cancelled what was scheduled; this catches what a tick planned from the
        // settings it held before).
        let policy = policy::Policy::new(self.settings.get());
        let (claimed, off): (Vec<Claimed>, Vec<Claimed>) =
            claimed.into_iter().partition(|c| !policy.disabled(&c.rule_id));
        // Journey steps whose run exited or whose condition now holds are skipped next.
        let (claimed, mut results) = crate::journeys::check_claimed(&self.store, claimed, now).await?;
        results.extend(off.into_iter().map(|c| {
            let reason = format!("rule {:?} disabled", c.rule_id);
            (c.id, c.attempt, Finalize::Skipped { reason })
        }));
        // Then collisions (a merging winner renders with the losers' occurrences), then quiet
        // hours and caps on the channel each message would go out on.
        let gate = policy::Gate::load(&self.store, &policy, &claimed, &members, now).await?;
        let (claimed, collided) = gate.collide(claimed, &members);
        results.extend(collided);

        let mut ready: Vec<(Claimed, Outgoing)> = Vec::with_capacity(n);
        for c in claimed {
            match self.prepare(&c, members.get(&c.member_id), &reach, &templates) {
                Ok(out) => ready.push((c, out)),
                Err(fin) => results.push((c.id, c.attempt, fin)),
            }
        }
        let (mut ready, deferred) = gate.admit(ready, &mut results);
        // Coupon codes go only to messages that will go out (past caps and quiet hours); those are rendered again with it.
        let codes = crate::coupons::issue(&self.store, &self.coupons, &ready, now).await?;
        if !codes.is_empty() {
            let mut with_codes = Vec::with_capacity(ready.len());
            for (mut c, out) in ready {
                match codes.get(&c.id) {
                    None => with_codes.push((c, out)),
                    Some(Err(reason)) => results.push((c.id, c.attempt, Finalize::Skipped { reason: reason.clone() })),
                    Some(Ok(code)) => {
                        c.vars.insert(crate::journeys::plan::VAR_COUPON.into(), code.clone().into());
                        match self.prepare(&c, members.get(&c.member_id), &reach, &templates) {
                            Ok(out) => with_codes.push((c, out)),
                            Err(fin) => results.push((c.id, c.attempt, fin)),
                        }
                    }
                }
            }
            ready = with_codes;
        }

        // Messages that cannot be sent (render errors, no address, capped) are settled first;
        // those in quiet hours wait, their attempt not counted.
        self.store.finalize(&self.owner, &results, self.clock.now()).await?;
        if !deferred.is_empty() {
            self.store.defer(&self.owner, &deferred, self.clock.now()).await?;
        }

        // Then the batch goes to the providers a group at a time: each group is marked `sending`
        // just before it goes and finalized as soon as it is back, so a crash leaves at most
        // the groups in flight ambiguous while the rest of the batch, still `claimed`, is sent by
        // the next worker. Two groups of half `concurrency` are in flight at once: the next
        // group is marked while the previous one is with the provider, and finalized while the
        // next one is, so neither the database nor the provider waits for the other, and no
        // more than `concurrency` sends are ever in flight. The lease is renewed meanwhile.
        let ids: Vec<i64> = ready.iter().map(|(c, _)| c.id).collect();
        let (groups, group_size) = groups_in_flight(self.concurrency);
        self.renewing(&ids, async {
            let mut rest = ready.into_iter().peekable();
            let mut in_flight = tokio::task::JoinSet::new();
            // A failure stops new groups, but the groups already with a provider are waited for
            // and finalized (dropping the set would abort them mid-send); the unmarked rest stays
            // claimed and returns to `scheduled` when the lease runs out. The first error is
            // returned once nothing is in flight.
            let mut failed: Option<anyhow::Error> = None;
            loop {
                while failed.is_none() && in_flight.len() < groups && rest.peek().is_some() {
                    if self.stop.is_cancelled() {
                        let unsent: Vec<i64> = rest.by_ref().map(|(c, _)| c.id).collect();
                        if let Err(e) = self.store.release(&self.owner, &unsent, self.clock.now()).await {
                            failed = Some(e.into());
                        }
                        break;
                    }
                    let group: Vec<(Claimed, Outgoing)> = rest.by_ref().take(group_size).collect();
                    match self.mark_group(group).await {
                        Ok(going) => {
                            let me = self.clone();
                            in_flight.spawn(async move { me.send_group(going).await });
                        }
                        Err(e) => failed = Some(e),
                    }
                }
                match in_flight.join_next().await {
                    None => break,
                    Some(done) => {
                        let result = done.map_err(|e| anyhow::anyhow!("a send group failed: {e}")).and_then(|r| r);
                        if let Err(e) = result {
                            failed.get_or_insert(e);
                        }
                    }
                }
            }
            failed.map_or(Ok(()), Err)
        })
        .await?;
        Ok(Step::Worked(n))
    }

    /// Marks a group `sending` (those whose consent still holds), skipping the ones whose consent
    /// was withdrawn since they were prepared; returns what is to be sent.
    async fn mark_group(&self, group: Vec<(Claimed, Outgoing)>) -> anyhow::Result<Vec<(Claimed, Outgoing)>> {
        let marks: Vec<(i64, u32, ChannelKind, String)> = group
            .iter()
            .map(|(c, o)| {
                let rendered = serde_json::to_string(&o.rendered).expect("rendered serializes");
                (c.id, c.attempt, o.rendered.channel(), rendered)
            })
            .collect();
        marks_hook(self, &marks).await;
        let moved = self.store.mark_sending_consented(&self.owner, &marks, self.consent, self.clock.now()).await?;
        self.skip_withdrawn(&group, &moved).await?;
        Ok(group.into_iter().filter(|(c, _)| moved.contains(&c.id)).collect())
    }

    /// Sends a group that was marked `sending`, concurrently, and records the results; addresses
    /// a provider called gone are suppressed.
    async fn send_group(&self, group: Vec<(Claimed, Outgoing)>) -> anyhow::Result<()> {
        let done = futures::future::join_all(group.into_iter().map(|(c, o)| self.send(c, o))).await;
        let gone: Vec<Suppression> = done.iter().filter_map(|(_, s)| s.clone()).collect();
        let done: Vec<(i64, u32, Finalize)> = done.into_iter().map(|(d, _)| d).collect();
        self.finalize(&done).await?;
        if !gone.is_empty() {
            // Not fatal: the next send to the address finds out again.
            if let Err(e) = self.store.suppress(&gone, self.clock.now()).await {
                tracing::warn!(error = %e, "could not record addresses that no longer exist");
            }
        }
        Ok(())
    }

    /// Messages of a group that `mark_sending` did not move because consent changed after they
    /// were prepared are skipped with the reason; the others it left were taken by another
    /// worker and are not this one's to settle. One query for the group's consent.
    async fn skip_withdrawn(&self, group: &[(Claimed, Outgoing)], moved: &[i64]) -> anyhow::Result<()> {
        let left: Vec<&(Claimed, Outgoing)> = group.iter().filter(|(c, _)| !moved.contains(&c.id)).collect();
        if left.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = left.iter().map(|(c, _)| c.member_id).collect();
        let consents = self.store.consents(&ids).await?;
        let skipped: Vec<(i64, u32, Finalize)> = left
            .iter()
            .filter_map(|(c, o)| {
                let channel = o.rendered.channel();
                let state = consents.get(&(c.member_id, channel, c.purpose)).copied();
                plan::consent::decide(&self.consent, c.purpose, channel, state)
                    .err()
                    .map(|reason| (c.id, c.attempt, Finalize::Skipped { reason }))
            })
            .collect();
        self.store.finalize(&self.owner, &skipped, self.clock.now()).await?;
        Ok(())
    }

    /// Records a group's results. The provider has already answered, so a database hiccup here
    /// is retried a few times before giving up (the group would then end `ambiguous`).
    async fn finalize(&self, done: &[(i64, u32, Finalize)]) -> anyhow::Result<()> {
        let mut wait = std::time::Duration::from_millis(100);
        for attempt in 1.. {
            match self.store.finalize(&self.owner, done, self.clock.now()).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 6 => {
                    tracing::warn!(error = %e, attempt, "finalize failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns")
    }

    /// Sends one message and decides what its attempt comes to; an address the provider says no
    /// longer exists comes back to be suppressed.
    async fn send(&self, c: Claimed, out: Outgoing) -> ((i64, u32, Finalize), Option<Suppression>) {
        let channel = out.rendered.channel();
        let route = self.channels.get(channel);
        let span = tracing::info_span!("message", message.id = c.id, member.id = %out.member,
            channel = %channel, rule = %c.rule_id, attempt = c.attempt, instance = %self.owner);
        async move {
            let started = self.on_sent.as_ref().map(|_| std::time::Instant::now());
            let (outcome, provider) = route.send(&out, self.clock.now()).await;
            if let (Some(hook), Some(started)) = (&self.on_sent, started) {
                hook(started.elapsed());
            }
            let gone = match &outcome {
                SendOutcome::Gone { error } => Some(Suppression {
                    channel,
                    address: out.to.clone(),
                    reason: error.clone(),
                    source: provider.to_string(),
                }),
                _ => None,
            };
            let jitter = rand::rng().random::<f64>();
            let policy = RetryPolicy { retry_unknown: self.retry_ambiguous.contains(&channel), ..self.retry };
            let fin = retry::decide(&policy, c.attempt, outcome, provider, self.clock.now(), c.deadline, jitter);
            match &fin {
                Finalize::Sent { provider_id, .. } => tracing::info!(provider_id, "sent"),
                Finalize::Retry { at, error } => tracing::warn!(%at, error, "transient failure, will retry"),
                Finalize::Failed { error } | Finalize::Dead { error } => tracing::error!(error, "not sent"),
                Finalize::Skipped { reason } => tracing::info!(reason, "skipped"),
                Finalize::Ambiguous { error } => tracing::error!(error, "delivery unknown; not resent"),
            }
            ((c.id, c.attempt, fin), gone)
        }
        .instrument(span)
        .await
    }

    /// What the batch's members can be reached on: their push devices (when push needs one),
    /// their consent, and which of their addresses are suppressed. Three queries per batch.
    async fn reach(&self, claimed: &[Claimed], members: &HashMap<i64, Member>, ids: &[i64]) -> anyhow::Result<Reach> {
        let chain = |c: &Claimed| std::iter::once(c.channel).chain(c.fallback.clone());
        let wants_push = claimed.iter().any(|c| chain(c).any(|ch| ch == ChannelKind::Push));
        let mut devices: HashMap<i64, Vec<PushDevice>> = HashMap::new();
        let push_devices = self.channels.push_needs_device();
        if wants_push && push_devices {
            for (member, d) in self.store.push_devices(ids).await? {
                devices.entry(member).or_default().push(d);
            }
        }
        let consents = self.store.consents(ids).await?;
        let mut addresses = Vec::new();
        for c in claimed {
            let Some(m) = members.get(&c.member_id) else { continue };
            for ch in chain(c) {
                let own = devices.get(&m.id).map(Vec::as_slice).unwrap_or_default();
                if let Some(a) = address(m, ch, push_devices.then_some(own)) {
                    addresses.push((ch, a.to));
                }
            }
        }
        addresses.sort_unstable();
        addresses.dedup();
        let suppressed = self.store.suppressed(&addresses).await?;
        Ok(Reach { push_devices, devices, consents, suppressed })
    }

    /// Runs `work` while renewing the lease on `ids` every third of the lease, so a slow batch
    /// is not taken for a dead worker's.
    async fn renewing<T>(&self, ids: &[i64], work: impl Future<Output = T>) -> T {
        let every = (self.lease.unsigned_abs() / 3).max(std::time::Duration::from_millis(100));
        while_renewing(every, work, || async {
            let until = self.clock.now().plus(self.lease);
            if let Err(e) = self.store.renew_lease(&self.owner, ids, until).await {
                tracing::warn!(error = %e, "could not renew the lease");
            }
        })
        .await
    }

    /// Runs steps until nothing is due now. For tests and the CLI; the daemon loops with waits.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        while let Step::Worked(n) = self.step().await? {
            total += n;
        }
        Ok(total)
    }

    /// Picks the channel (the message's own, else its fallbacks in order) and the address the
    /// member can be reached on there, and renders the message for it; or says why it cannot be
    /// sent.
    fn prepare(
        &self,
        c: &Claimed,
        member: Option<&Member>,
        reach: &Reach,
        templates: &crate::render::Templates,
    ) -> Result<Outgoing, Finalize> {
        let Some(member) = member else {
            return Err(Finalize::Failed { error: "member no longer exists".into() });
        };
        if let Some(reason) = triggers::no_longer_due(&c.vars, member) {
            return Err(Finalize::Skipped { reason: reason.into() });
        }
        let mut why_not = Vec::new();
        let mut chosen = None;
        for channel in std::iter::once(c.channel).chain(c.fallback.iter().copied()) {
            let consent = reach.consents.get(&(member.id, channel, c.purpose)).copied();
            if let Err(reason) = plan::consent::decide(&self.consent, c.purpose, channel, consent) {
                why_not.push(reason);
                continue;
            }
            let devices = reach.devices.get(&member.id).map(Vec::as_slice).unwrap_or_default();
            let Some(addr) = address(member, channel, reach.push_devices.then_some(devices)) else {
                why_not.push(plan::no_address(channel).to_string());
                continue;
            };
            if reach.suppressed.contains(&(channel, addr.to.clone())) {
                why_not.push(format!("{channel} address suppressed"));
                continue;
            }
            chosen = Some((channel, addr));
            break;
        }
        let Some((channel, addr)) = chosen else {
            return Err(Finalize::Skipped { reason: why_not.join("; ") });
        };
        let locale = member.locale.clone().unwrap_or_else(|| self.default_locale.clone());
        let zone = member.time_zone.clone().unwrap_or_else(|| self.default_zone.clone());
        let ctx = context::build(member, &c.vars, &self.programme_name, &c.rule_id, &locale, &zone);
        let rendered: Rendered = templates
            .render(&c.template, channel, &ctx)
            .map_err(|e| Finalize::Failed { error: format!("render: {e}") })?;
        Ok(Outgoing {
            id: c.id,
            dedupe_key: c.dedupe_key.clone(),
            rule_id: c.rule_id.clone(),
            member: member.external_id.clone(),
            member_name: member.name.clone(),
            to: addr.to,
            device: addr.device,
            purpose: c.purpose,
            rendered,
        })
    }

    /// The earliest instant something is due, if anything is scheduled.
    pub async fn next_due(&self) -> anyhow::Result<Option<Timestamp>> {
        Ok(self.store.next_due().await?)
    }
}

/// What a batch's members can be reached on (see [`Dispatcher::reach`]).
struct Reach {
    /// Whether push needs a registered device (false when the outbox serves push).
    push_devices: bool,
    devices: HashMap<i64, Vec<PushDevice>>,
    /// Whether each (member, channel, purpose) the members said something about is granted.
    consents: HashMap<(i64, ChannelKind, crate::channels::Purpose), bool>,
    suppressed: std::collections::HashSet<(ChannelKind, String)>,
}

#[cfg(test)]
mod tests {
    use super::{groups_in_flight, while_renewing};

    /// The renewal waits on something only the work can release (as the lease renewal's UPDATE
    /// waits on rows a group's mark-sending holds until it commits): the work must go on.
    #[tokio::test(start_paused = true)]
    async fn the_work_goes_on_while_a_renewal_waits_on_it() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let renewal_started = tokio::sync::Notify::new();
        let committed = tokio_util::sync::CancellationToken::new();
        let renewals = AtomicUsize::new(0);
        let work = async {
            renewal_started.notified().await;
            committed.cancel();
            42
        };
        let renew = || async {
            renewals.fetch_add(1, Ordering::SeqCst);
            renewal_started.notify_one();
            committed.cancelled().await;
        };
        let every = std::time::Duration::from_millis(100);
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), while_renewing(every, work, renew)).await;
        assert_eq!(out, Ok(42), "the work waited for the renewal that waited for it");
        assert_eq!(renewals.load(Ordering::SeqCst), 1);
    }

    /// Renewals come every `every` while the work lasts, and stop with it.
    #[tokio::test(start_paused = true)]
    async fn renewals_come_while_the_work_lasts_and_stop_with_it() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let renewals = AtomicUsize::new(0);
        let every = std::time::Duration::from_millis(100);
        let work = tokio::time::sleep(std::time::Duration::from_millis(350));
        while_renewing(every, work, || async {
            renewals.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!(renewals.load(Ordering::SeqCst), 3);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(renewals.load(Ordering::SeqCst), 3, "no renewal after the work ended");
    }

    #[test]
    fn the_groups_in_flight_never_hold_more_sends_than_the_concurrency() {
        assert_eq!(groups_in_flight(1), (1, 1));
        assert_eq!(groups_in_flight(2), (2, 1));
        assert_eq!(groups_in_flight(3), (2, 1));
        assert_eq!(groups_in_flight(64), (2, 32));
        for c in 1..200 {
            let (groups, size) = groups_in_flight(c);
            assert!(groups * size <= c && size >= 1, "concurrency {c}: {groups} groups of {size}");
        }
    }
}
