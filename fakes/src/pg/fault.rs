//! Fault injection: what can go wrong on a call to the PG, asked for per request (the
//! `X-Sandbox-Fault` header), queued for the next matching calls (`POST /v1/sandbox/faults`, or
//! [`super::Control::inject`]) or drawn at random at configured rates (`fakes.pg.*_rate`, for the
//! load simulation).

use std::{collections::VecDeque, time::Duration};

use rand::Rng;
use serde::Deserialize;

/// One thing that goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The card company declines the confirm: 403 `REJECT_CARD_COMPANY`, the payment `ABORTED`.
    Decline,
    /// The call hangs past any caller's timeout (`hang`) and then fails; no money moves.
    Timeout,
    /// 500 `FAILED_INTERNAL_SYSTEM_PROCESSING`; nothing changes.
    Error,
    /// 400 `PROVIDER_ERROR` (Toss's retryable error); nothing changes.
    ProviderError,
    /// The answer is right but comes after `slow`.
    Slow,
    /// The call is applied (the money moved, the answer is stored under the idempotency key)
    /// but the reply comes only after `hang`: a caller sees a timeout.
    TimeoutAfterApply,
    /// The webhooks of this call's status changes are delivered twice.
    DuplicateWebhook,
    /// The webhook of this call's status change is held back and delivered after the
    /// payment's next one (or after `reorder_flush`).
    ReorderWebhook,
    /// The call is applied as usual but its Payment object says another `totalAmount` (1,000
    /// more): a PG (or something between) answering wrong, which a merchant must not trust.
    WrongAmount,
    /// The call is applied as usual but its Payment object names another `orderId`.
    WrongOrder,
    /// 401 `UNAUTHORIZED_KEY` as if the secret key were wrong (a key rotated at the PG); nothing
    /// changes.
    Unauthorized,
}

impl Fault {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "decline" => Self::Decline,
            "timeout" => Self::Timeout,
            "error" | "500" => Self::Error,
            "provider_error" => Self::ProviderError,
            "slow" => Self::Slow,
            "timeout_after_apply" => Self::TimeoutAfterApply,
            "duplicate_webhook" => Self::DuplicateWebhook,
            "reorder_webhook" => Self::ReorderWebhook,
            "wrong_amount" => Self::WrongAmount,
            "wrong_order" => Self::WrongOrder,
            "unauthorized" => Self::Unauthorized,
            _ => return None,
        })
    }
}

/// Which calls a queued fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `POST /v1/payments/confirm`.
    Confirm,
    /// `POST /v1/payments/{paymentKey}/cancel`.
    Cancel,
    /// `GET /v1/payments/...`.
    Lookup,
}

/// A fault queued for the next `count` matching calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// What goes wrong.
    pub fault: Fault,
    /// Only calls on this order (any when absent).
    #[serde(default)]
    pub order_id: Option<String>,
    /// Only this kind of call (any when absent).
    #[serde(default)]
    pub operation: Option<Operation>,
    /// How many calls it applies to (1 when absent).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

impl Rule {
    /// `fault` for the next call of any kind on any order.
    pub fn next(fault: Fault) -> Self {
        Self {
            fault,
            order_id: None,
            operation: None,
            count: 1,
        }
    }

    /// Only on `order_id`.
    pub fn on_order(mut self, order_id: impl Into<String>) -> Self {
        self.order_id = Some(order_id.into());
        self
    }

    /// Only on `operation`.
    pub fn on(mut self, operation: Operation) -> Self {
        self.operation = Some(operation);
        self
    }

    /// For `count` calls.
    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    fn matches(&self, operation: Operation, order_id: Option<&str>) -> bool {
        self.operation.is_none_or(|o| o == operation)
            && self.order_id.as_deref().is_none_or(|o| Some(o) == order_id)
    }
}

/// The queued rules, at most `cap` of them (a flood of rules is refused, not stored).
pub struct Rules {
    rules: VecDeque<Rule>,
    cap: usize,
}

impl Rules {
    pub fn new(cap: usize) -> Self {
        Self {
            rules: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Queues `rule`; false when the queue is full.
    pub fn push(&mut self, rule: Rule) -> bool {
        if self.rules.len() >= self.cap || rule.count == 0 {
            return rule.count == 0;
        }
        self.rules.push_back(rule);
        true
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Takes one use of every rule that matches the call (each kind of fault once).
    pub fn take(&mut self, operation: Operation, order_id: Option<&str>, into: &mut Faults) {
        for rule in self.rules.iter_mut() {
            if rule.count > 0 && rule.matches(operation, order_id) && !into.has(rule.fault) {
                rule.count -= 1;
                into.add(rule.fault);
            }
        }
        self.rules.retain(|r| r.count > 0);
    }
}

/// The chance of each fault per call, 0 to 1 (`fakes.pg.*_rate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rates {
    /// Confirms declined.
    pub decline: f64,
    /// Calls answered 500.
    pub error: f64,
    /// Calls answered `PROVIDER_ERROR`.
    pub provider_error: f64,
    /// Calls that hang without moving money.
    pub timeout: f64,
    /// Calls applied whose reply is lost (comes after `hang`).
    pub timeout_after_apply: f64,
    /// Calls answered after `slow`.
    pub slow: f64,
    /// Webhooks delivered twice.
    pub duplicate_webhook: f64,
    /// Webhooks delivered after the next one.
    pub reorder_webhook: f64,
}

impl Rates {
    /// Draws the faults of one call.
    pub fn draw(&self, operation: Operation, into: &mut Faults) {
        let mut rng = rand::rng();
        let mut roll = |p: f64, f: Fault, into: &mut Faults| {
            if p > 0.0 && rng.random_bool(p.clamp(0.0, 1.0)) {
                into.add(f);
            }
        };
        if operation == Operation::Confirm {
            roll(self.decline, Fault::Decline, into);
        }
        roll(self.error, Fault::Error, into);
        roll(self.provider_error, Fault::ProviderError, into);
        roll(self.timeout, Fault::Timeout, into);
        roll(self.slow, Fault::Slow, into);
        if operation != Operation::Lookup {
            roll(self.timeout_after_apply, Fault::TimeoutAfterApply, into);
            roll(self.duplicate_webhook, Fault::DuplicateWebhook, into);
            roll(self.reorder_webhook, Fault::ReorderWebhook, into);
        }
    }
}

/// The faults of one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    faults: Vec<Fault>,
    /// Extra latency asked for in the header (`latency=<ms>`).
    pub latency: Option<Duration>,
}

impl Faults {
    /// Reads `X-Sandbox-Fault: decline, latency=300`; an unknown fault is an error (a typo in a
    /// test should fail loudly, not pass silently).
    pub fn parse(header: &str) -> Result<Self, String> {
        let mut faults = Self::default();
        for token in header.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let token = token.to_ascii_lowercase();
            if let Some(ms) = token.strip_prefix("latency=") {
                let ms: u64 = ms
                    .parse()
                    .map_err(|_| format!("latency={ms} is not a number of milliseconds"))?;
                faults.latency = Some(Duration::from_millis(ms.min(600_000)));
            } else if let Some(f) = Fault::parse(&token) {
                faults.add(f);
            } else {
                return Err(format!("unknown sandbox fault `{token}`"));
            }
        }
        Ok(faults)
    }

    pub fn add(&mut self, f: Fault) {
        if !self.has(f) {
            self.faults.push(f);
        }
    }

    pub fn has(&self, f: Fault) -> bool {
        self.faults.contains(&f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_faults_and_a_latency() {
        let f = Faults::parse("Decline, latency=250 ,duplicate_webhook").unwrap();
        assert!(f.has(Fault::Decline) && f.has(Fault::DuplicateWebhook));
        assert!(!f.has(Fault::Timeout));
        assert_eq!(f.latency, Some(Duration::from_millis(250)));
        assert!(Faults::parse("declined").is_err());
        assert!(Faults::parse("latency=soon").is_err());
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
    }

    #[test]
    fn queued_rules_apply_to_matching_calls_as_often_as_asked() {
        let mut rules = Rules::new(2);
        assert!(rules.push(Rule::next(Fault::Decline).on_order("o1").times(2)));
        assert!(rules.push(Rule::next(Fault::Error).on(Operation::Cancel)));
        assert!(!rules.push(Rule::next(Fault::Slow)), "the queue is full");
        let take = |rules: &mut Rules, op, order| {
            let mut f = Faults::default();
            rules.take(op, order, &mut f);
            f
        };
        assert_eq!(
            take(&mut rules, Operation::Confirm, Some("o2")),
            Faults::default()
        );
        assert!(take(&mut rules, Operation::Confirm, Some("o1")).has(Fault::Decline));
        let f = take(&mut rules, Operation::Cancel, Some("o1"));
        assert!(f.has(Fault::Decline) && f.has(Fault::Error));
        assert_eq!(
            take(&mut rules, Operation::Cancel, Some("o1")),
            Faults::default()
        );
    }

    #[test]
    fn rates_of_one_always_and_zero_never_fire() {
        let mut f = Faults::default();
        Rates::default().draw(Operation::Confirm, &mut f);
        assert_eq!(f, Faults::default());
        let always = Rates {
            decline: 1.0,
            ..Rates::default()
        };
        always.draw(Operation::Confirm, &mut f);
        assert!(f.has(Fault::Decline));
    }
}
