//! The outbox's lanes against controllable fake peers, on paused Tokio time: a failing
//! destination never delays another, transient failures are retried up to a bound, refusals
//! and overflow go to the dead letters visibly, order holds within a lane, and flush ends
//! within its deadline.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dispatch_bus::ports::{
    AudienceKey, Call, CallOptions, Case, CaseClient, CaseKind, CasePort, Cursor, NoticeBody,
    NoticeStream, NotifyClient, NotifyPort, PortError, Publication, Subscription,
};
use dispatch_bus::trace::TraceContext;
use dispatch_core::district::{DispatchOrder, Effect};
use dispatch_core::{Category, Incident, IncidentState, LatLng, Timestamp};
use dispatch_district::outbox::{
    DeadLetter, DeadLetterSink, EffectKind, Error, FlushReport, Lane, MemoryDeadLetters, Outbox,
    OutboxConfig, Reason,
};
use tokio::time::Instant;
use tonic::{Code, Status};

// ---- fakes ----

/// How a fake peer answers.
#[derive(Debug, Clone)]
enum Mode {
    Accept,
    /// Every call fails with this code.
    Fail(Code),
    /// The first n calls fail with the code, later ones succeed.
    FailFirst(usize, Code),
    /// Calls never answer.
    Hang,
    /// A publish naming this officer is refused whole with InvalidArgument, as the
    /// notification service does.
    RefuseOfficer(&'static str),
}

/// A fake peer: answers each call as its mode says and keeps what it accepted, with the
/// Tokio time it arrived.
struct Fake<T> {
    name: &'static str,
    mode: Mutex<Mode>,
    calls: AtomicUsize,
    /// The trace context of each call.
    traces: Mutex<Vec<Option<TraceContext>>>,
    received: Mutex<Vec<(Instant, T)>>,
}

type FakeNotify = Fake<Publication>;
/// Keeps the incident id of each case opened.
type FakeCases = Fake<String>;

impl<T: Clone> Fake<T> {
    fn new(name: &'static str, mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            name,
            mode: Mutex::new(mode),
            calls: AtomicUsize::new(0),
            traces: Mutex::new(Vec::new()),
            received: Mutex::new(Vec::new()),
        })
    }
    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn received(&self) -> Vec<(Instant, T)> {
        self.received.lock().unwrap().clone()
    }
    fn traces(&self) -> Vec<Option<TraceContext>> {
        self.traces.lock().unwrap().clone()
    }
    /// One call carrying `items`; `names(item, officer)` says whether an item is for `officer`.
    async fn answer(
        &self,
        context: &Call,
        items: Vec<T>,
        names: impl Fn(&T, &str) -> bool,
    ) -> Result<(), PortError> {
        self.traces.lock().unwrap().push(context.trace);
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let mode = self.mode.lock().unwrap().clone();
        let down = |code| Err(Status::new(code, format!("fake {} says no", self.name)).into());
        match mode {
            Mode::Accept => {}
            Mode::Fail(code) => return down(code),
            Mode::FailFirst(n, code) if call <= n => return down(code),
            Mode::FailFirst(..) => {}
            Mode::Hang => std::future::pending::<()>().await,
            Mode::RefuseOfficer(bad) => {
                if items.iter().any(|i| names(i, bad)) {
                    return Err(Status::invalid_argument(format!("officer {bad:?} unknown")).into());
                }
            }
        }
        let now = Instant::now();
        self.received
            .lock()
            .unwrap()
            .extend(items.into_iter().map(|i| (now, i)));
        Ok(())
    }
}

impl FakeNotify {
    /// Labels of what was published, in order: the dispatch id of an order,
    /// `incident@revision` of an update.
    fn labels(&self) -> Vec<String> {
        self.received().iter().map(|(_, p)| label(p)).collect()
    }
    /// When the publication labelled `l` arrived.
    fn arrived(&self, l: &str) -> Instant {
        let received = self.received();
        received.iter().find(|(_, p)| label(p) == l).unwrap().0
    }
}

impl FakeCases {
    fn opened(&self) -> Vec<String> {
        self.received().into_iter().map(|(_, id)| id).collect()
    }
}

fn officer_of(p: &Publication) -> Option<&str> {
    match &p.audience {
        AudienceKey::Officer(id) => Some(id.as_str()),
        AudienceKey::CommandCenter => None,
    }
}

/// The dispatch id of an order, `incident@revision` of an update.
fn label(p: &Publication) -> String {
    match &p.body {
        NoticeBody::DispatchOrder(o) => o.dispatch_id.to_string(),
        NoticeBody::IncidentUpdate(i) => format!("{}@{}", i.id, i.revision),
    }
}

#[tonic::async_trait]
impl NotifyPort for FakeNotify {
    async fn publish(
        &self,
        call: &Call,
        publications: Vec<Publication>,
    ) -> Result<Vec<Cursor>, PortError> {
        let n = publications.len() as u64;
        self.answer(call, publications, |p, officer| {
            officer_of(p) == Some(officer)
        })
        .await?;
        Ok((1..=n)
            .map(|position| Cursor { epoch: 1, position })
            .collect())
    }

    async fn subscribe(&self, _: &Call, _: Subscription) -> Result<NoticeStream, PortError> {
        Err(Status::unimplemented("the fake only takes publications").into())
    }
}

#[tonic::async_trait]
impl CasePort for FakeCases {
    async fn open_case(&self, call: &Call, incident: Incident) -> Result<Case, PortError> {
        self.answer(call, vec![incident.id.to_string()], |_, _| false)
            .await?;
        Ok(Case {
            case_id: format!("case-{}", incident.id).into(),
            incident_id: incident.id,
            station_id: incident.station_id,
            district_id: incident.district_id,
            kind: CaseKind::Criminal,
            investigator_id: "town-s1-i01".into(),
            opened_at: Timestamp(1_700_000_900_000),
        })
    }
}

/// Client options of the fakes: the outbox sets its own deadline on them.
fn options() -> CallOptions {
    CallOptions::with_deadline(Duration::from_secs(60))
}

fn clients(notify: &Arc<FakeNotify>, cases: &Arc<FakeCases>) -> (NotifyClient, CaseClient) {
    (
        NotifyClient::from_port(notify.clone(), options()),
        CaseClient::from_port(cases.clone(), options()),
    )
}

// ---- effects ----

fn incident(id: &str, revision: u64) -> Incident {
    let mut i = Incident::received(
        id.into(),
        format!("call-{id}").into(),
        Category::Theft,
        LatLng {
            lat: 23.02,
            lon: 113.75,
        },
        "wallet taken".into(),
        Timestamp(1_700_000_000_000),
    );
    i.district_id = "town-d01".into();
    i.station_id = "town-s1".into();
    i.sub_bureau_id = "town".into();
    i.state = IncidentState::Queued;
    i.revision = revision;
    i
}

fn changed(id: &str, revision: u64) -> Effect {
    Effect::IncidentChanged(incident(id, revision))
}

fn order(incident_id: &str, officer_id: &str) -> Effect {
    let i = incident(incident_id, 1);
    Effect::Order(DispatchOrder {
        dispatch_id: format!("town-d01/{incident_id}/1").into(),
        incident_id: incident_id.into(),
        officer_id: officer_id.into(),
        district_id: i.district_id,
        priority: i.priority,
        category: i.category,
        location: i.location,
        description: i.description,
        eta_s: 120.0,
        dispatched_at: Timestamp(1_700_000_060_000),
    })
}

fn open_case(id: &str) -> Effect {
    Effect::OpenCase(incident(id, 5))
}

// ---- harness ----

struct Rig {
    outbox: Outbox,
    notify: Arc<FakeNotify>,
    cases: Arc<FakeCases>,
    letters: Arc<MemoryDeadLetters>,
}

fn rig(config: OutboxConfig, notify: Mode, cases: Mode) -> Rig {
    let notify = FakeNotify::new("notification", notify);
    let cases = FakeCases::new("case-squad", cases);
    let letters = Arc::new(MemoryDeadLetters::default());
    let (notify_client, case_client) = clients(&notify, &cases);
    let outbox = Outbox::start(notify_client, case_client, config, letters.clone()).unwrap();
    Rig {
        outbox,
        notify,
        cases,
        letters,
    }
}

/// Waits on paused Tokio time (each step lets the runtime jump to its next timer) until
/// `cond` holds; fails after 1,000 steps of 100 ms of Tokio time.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

// ---- tests ----

#[tokio::test(start_paused = true)]
async fn a_failing_case_squad_does_not_delay_orders_and_opens_the_case_once_back() {
    let config = OutboxConfig {
        max_tries: 1_000,
        ..OutboxConfig::default()
    };
    let r = rig(config, Mode::Accept, Mode::Fail(Code::Unavailable));

    r.outbox.emit(vec![changed("inc-1", 4), open_case("inc-1")]);
    r.outbox
        .emit(vec![changed("inc-2", 2), order("inc-2", "o-1")]);
    eventually("publications delivered", || r.notify.labels().len() == 3).await;
    assert_eq!(
        r.notify.labels(),
        ["inc-1@4", "inc-2@2", "town-d01/inc-2/1"]
    );
    // Updates go to the command center, the order to its officer, each with its id.
    let sent: Vec<(Option<String>, Option<String>)> = r
        .notify
        .received()
        .iter()
        .map(|(_, p)| (officer_of(p).map(str::to_owned), p.id.clone()))
        .collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        sent,
        [
            (None, some("inc-1@4")),
            (None, some("inc-2@2")),
            (some("o-1"), some("town-d01/inc-2/1"))
        ]
    );
    assert!(r.cases.opened().is_empty());

    // A minute of the case squad down: the case lane keeps retrying...
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stats = r.outbox.stats();
    assert!(stats.case_squad.retried >= 10, "{stats:?}");
    assert_eq!(stats.case_squad.pending, 1);
    assert_eq!(stats.case_squad.delivered, 0);
    // ...and a new order still goes out without waiting for it.
    let emitted = Instant::now();
    r.outbox.emit(vec![order("inc-3", "o-2")]);
    eventually("new order delivered", || r.notify.labels().len() == 4).await;
    assert!(r.notify.arrived("town-d01/inc-3/1") - emitted < Duration::from_millis(50));
    assert_eq!(r.notify.labels()[3], "town-d01/inc-3/1");
    assert!(r.cases.opened().is_empty());

    r.cases.set_mode(Mode::Accept);
    eventually("case opened", || !r.cases.opened().is_empty()).await;
    let calls = r.cases.calls();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(r.cases.opened(), ["inc-1"]);
    assert_eq!(r.cases.calls(), calls, "no call after the case was opened");
    let stats = r.outbox.stats();
    assert_eq!(stats.case_squad.delivered, 1);
    assert_eq!(stats.case_squad.dead_lettered, 0);
    assert_eq!(stats.case_squad.pending, 0);
    assert_eq!(stats.notification.delivered, 4);
    assert_eq!(stats.notification.retried, 0);
    assert_eq!(r.letters.recorded(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_case_refused_with_invalid_argument_is_dead_lettered_at_once() {
    let r = rig(
        OutboxConfig::default(),
        Mode::Accept,
        Mode::Fail(Code::InvalidArgument),
    );
    let started = Instant::now();
    r.outbox.emit(vec![open_case("inc-9")]);
    // 1 ms of Tokio time, far less than the first backoff (50 ms): no retry can fit in it.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(started.elapsed(), Duration::from_millis(1));
    assert_eq!(r.outbox.stats().case_squad.dead_lettered, 1);
    assert_eq!(r.cases.calls(), 1);
    let stats = r.outbox.stats().case_squad;
    assert_eq!((stats.retried, stats.delivered, stats.pending), (0, 0, 0));
    assert_eq!(
        r.letters.letters(),
        [DeadLetter {
            lane: Lane::CaseSquad,
            destination: "station:town-s1".into(),
            kind: EffectKind::OpenCase,
            incident_id: "inc-9".into(),
            reason: Reason::Refused {
                error: PortError::Refused {
                    code: Code::InvalidArgument,
                    field: None,
                    message: "fake case-squad says no".into(),
                },
            },
            effect: open_case("inc-9"),
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_publication_is_dead_lettered_after_max_tries_of_an_unavailable_peer() {
    let config = OutboxConfig {
        max_tries: 4,
        ..OutboxConfig::default()
    };
    let r = rig(config, Mode::Fail(Code::Unavailable), Mode::Accept);
    let started = Instant::now();
    r.outbox.emit(vec![order("inc-1", "o-7")]);
    eventually("dead-lettered", || {
        r.outbox.stats().notification.dead_lettered == 1
    })
    .await;
    // Four tries with backoff 50, 100 and 200 ms between them.
    assert_eq!(r.notify.calls(), 4);
    assert!(started.elapsed() >= Duration::from_millis(350));
    let stats = r.outbox.stats().notification;
    assert_eq!((stats.retried, stats.delivered, stats.pending), (3, 0, 0));
    assert_eq!(
        r.letters.letters(),
        [DeadLetter {
            lane: Lane::Notification,
            destination: "officer:o-7".into(),
            kind: EffectKind::Order,
            incident_id: "inc-1".into(),
            reason: Reason::GaveUp {
                tries: 4,
                error: PortError::Unavailable {
                    message: "fake notification says no".into(),
                },
            },
            effect: order("inc-1", "o-7"),
        }]
    );
    // Later effects are not held behind the dead one.
    r.notify.set_mode(Mode::Accept);
    r.outbox.emit(vec![changed("inc-1", 3)]);
    eventually("next delivered", || r.notify.labels() == ["inc-1@3"]).await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_peer_counts_as_a_failed_try() {
    let config = OutboxConfig {
        max_tries: 2,
        call_deadline: Duration::from_secs(1),
        ..OutboxConfig::default()
    };
    let r = rig(config, Mode::Hang, Mode::Accept);
    let started = Instant::now();
    r.outbox.emit(vec![changed("inc-4", 1)]);
    eventually("dead-lettered", || r.letters.recorded() == 1).await;
    // Two deadlines of 1 s and one backoff of 50 ms.
    assert!(started.elapsed() >= Duration::from_millis(2_050));
    let letters = r.letters.letters();
    assert_eq!(letters[0].destination, "command-center");
    assert_eq!(letters[0].kind, EffectKind::IncidentChanged);
    assert_eq!(
        letters[0].reason,
        Reason::GaveUp {
            tries: 2,
            error: PortError::DeadlineExceeded {
                after: Some(Duration::from_secs(1)),
                message: String::new(),
            },
        }
    );
    assert_eq!(
        letters[0].reason.to_string(),
        "gave up after 2 tries, last error: no answer within the deadline of 1000 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn order_is_kept_within_the_notification_lane_across_retries() {
    let r = rig(
        OutboxConfig::default(),
        Mode::FailFirst(2, Code::Unavailable),
        Mode::Accept,
    );
    r.outbox.emit(vec![changed("inc-1", 2)]);
    // b and c arrive while a is being retried, so they travel in a later batch.
    eventually("a tried", || r.notify.calls() >= 1).await;
    r.outbox.emit(vec![order("inc-1", "o-1")]);
    r.outbox.emit(vec![changed("inc-1", 3)]);
    eventually("all delivered", || r.notify.labels().len() == 3).await;
    assert_eq!(
        r.notify.labels(),
        ["inc-1@2", "town-d01/inc-1/1", "inc-1@3"]
    );
    let stats = r.outbox.stats().notification;
    assert_eq!(
        (stats.delivered, stats.retried, stats.dead_lettered),
        (3, 2, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_batch_loses_only_its_bad_publication() {
    let r = rig(
        OutboxConfig::default(),
        Mode::RefuseOfficer("o-bad"),
        Mode::Accept,
    );
    r.outbox.emit(vec![
        order("inc-1", "o-1"),
        order("inc-2", "o-bad"),
        order("inc-3", "o-1"),
        changed("inc-3", 2),
    ]);
    eventually("settled", || r.outbox.stats().notification.pending == 0).await;
    assert_eq!(
        r.notify.labels(),
        ["town-d01/inc-1/1", "town-d01/inc-3/1", "inc-3@2"]
    );
    // The batch, then each of its four publications alone.
    assert_eq!(r.notify.calls(), 5);
    let letters = r.letters.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].destination, "officer:o-bad");
    assert_eq!(letters[0].incident_id, "inc-2");
    assert_eq!(
        letters[0].reason,
        Reason::Refused {
            error: PortError::Refused {
                code: Code::InvalidArgument,
                field: None,
                message: "officer \"o-bad\" unknown".into(),
            },
        }
    );
    let stats = r.outbox.stats().notification;
    assert_eq!((stats.delivered, stats.dead_lettered), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn a_full_lane_dead_letters_the_overflow_and_emit_never_blocks() {
    let config = OutboxConfig {
        lane_capacity: 2,
        call_deadline: Duration::from_secs(1),
        ..OutboxConfig::default()
    };
    let r = rig(config, Mode::Hang, Mode::Accept);
    // The lane task cannot run during these synchronous calls: two fit, three overflow.
    r.outbox
        .emit((1..=5).map(|n| changed(&format!("inc-{n}"), 1)).collect());
    let stats = r.outbox.stats().notification;
    assert_eq!(
        (stats.overflowed, stats.dead_lettered, stats.pending),
        (3, 3, 2)
    );
    let letters = r.letters.letters();
    let ids: Vec<&str> = letters.iter().map(|l| l.incident_id.as_str()).collect();
    assert_eq!(ids, ["inc-3", "inc-4", "inc-5"]);
    for l in &letters {
        assert_eq!(
            l.reason,
            Reason::LaneFull {
                lane: Lane::Notification,
                capacity: 2
            }
        );
    }

    // While the peer hangs on the first two, the lane has room for two more again.
    eventually("first batch in flight", || r.notify.calls() == 1).await;
    r.outbox
        .emit((6..=8).map(|n| changed(&format!("inc-{n}"), 1)).collect());
    let stats = r.outbox.stats().notification;
    assert_eq!((stats.overflowed, stats.pending), (4, 4));
    assert_eq!(r.letters.letters()[3].incident_id, "inc-8");
    // The case lane is another lane: not full.
    r.outbox.emit(vec![open_case("inc-1")]);
    eventually("case opened", || r.cases.opened() == ["inc-1"]).await;

    r.notify.set_mode(Mode::Accept);
    eventually("queued ones delivered", || r.notify.labels().len() == 4).await;
    assert_eq!(
        r.notify.labels(),
        ["inc-1@1", "inc-2@1", "inc-6@1", "inc-7@1"]
    );
    let stats = r.outbox.stats().notification;
    assert_eq!(
        (stats.delivered, stats.dead_lettered, stats.pending),
        (4, 4, 0)
    );
    // The overflow was parked, not lost: the next redrive (every 10 s by default) delivers it,
    // oldest first.
    assert_eq!(stats.parked, 4);
    eventually("overflow redriven", || r.notify.labels().len() == 8).await;
    assert_eq!(
        r.notify.labels()[4..],
        ["inc-3@1", "inc-4@1", "inc-5@1", "inc-8@1"]
    );
    // The lane holds 2, so a redrive of 4 overflows again and parks 2 for the next one: each
    // effect is still delivered once.
    let stats = r.outbox.stats().notification;
    assert_eq!((stats.delivered, stats.parked, stats.pending), (8, 0, 0));
    assert_eq!(stats.redriven, 6, "4, then the 2 that overflowed again");
}

#[tokio::test(start_paused = true)]
async fn flush_ends_at_its_deadline_and_reports_what_was_left() {
    let config = OutboxConfig {
        max_tries: 1_000,
        ..OutboxConfig::default()
    };
    let r = rig(config, Mode::Fail(Code::Unavailable), Mode::Accept);
    r.outbox.emit(vec![
        changed("inc-1", 2),
        order("inc-1", "o-1"),
        open_case("inc-2"),
    ]);
    eventually("retrying", || r.outbox.stats().notification.retried >= 1).await;
    r.outbox.emit(vec![changed("inc-3", 2)]);

    let started = Instant::now();
    let deadline = Duration::from_secs(10);
    let report = r.outbox.flush(deadline).await;
    let took = started.elapsed();
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(
        report,
        FlushReport {
            drained: false,
            notification_left: 3,
            case_squad_left: 0,
        }
    );
    assert_eq!(report.left(), 3);
    assert_eq!(r.cases.opened(), ["inc-2"]);
    let letters = r.letters.letters();
    let ids: Vec<&str> = letters.iter().map(|l| l.incident_id.as_str()).collect();
    assert_eq!(ids, ["inc-1", "inc-1", "inc-3"]);
    // The batch in flight had failed tries; the one queued behind it had none.
    assert!(matches!(letters[0].reason, Reason::Shutdown { tries } if tries > 1));
    assert_eq!(letters[2].reason, Reason::Shutdown { tries: 0 });
    assert_eq!(r.outbox.stats().notification.pending, 0);

    // After a flush nothing new is taken, visibly.
    r.outbox.emit(vec![order("inc-4", "o-2")]);
    assert_eq!(r.letters.letters()[3].reason, Reason::Closed);
    assert_eq!(r.outbox.stats().notification.dead_lettered, 4);
    // A second flush returns at once with the same counts.
    let again = Instant::now();
    assert_eq!(r.outbox.flush(deadline).await, report);
    assert_eq!(again.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn flush_drains_lanes_whose_peers_answer() {
    let r = rig(
        OutboxConfig::default(),
        Mode::FailFirst(1, Code::Unavailable),
        Mode::Accept,
    );
    r.outbox.emit(vec![
        changed("inc-1", 4),
        open_case("inc-1"),
        changed("inc-2", 1),
    ]);
    let started = Instant::now();
    let report = r.outbox.flush(Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        report,
        FlushReport {
            drained: true,
            notification_left: 0,
            case_squad_left: 0,
        }
    );
    assert_eq!(r.notify.labels(), ["inc-1@4", "inc-2@1"]);
    assert_eq!(r.cases.opened(), ["inc-1"]);
    assert_eq!(r.letters.recorded(), 0);
}

#[test]
fn memory_dead_letters_keep_the_most_recent_and_count_all() {
    let letters = MemoryDeadLetters::new(2);
    for n in 1..=3 {
        letters.record(DeadLetter::new(
            changed(&format!("inc-{n}"), 1),
            Reason::Closed,
        ));
    }
    assert_eq!(letters.recorded(), 3);
    let ids: Vec<String> = letters
        .letters()
        .into_iter()
        .map(|l| l.incident_id)
        .collect();
    assert_eq!(ids, ["inc-2", "inc-3"]);
}

#[test]
fn config_reads_milliseconds_and_checks_its_rules() {
    let config: OutboxConfig = toml::from_str("lane_capacity = 64\ncall_deadline = 2500").unwrap();
    assert_eq!(config.lane_capacity, 64);
    assert_eq!(config.call_deadline, Duration::from_millis(2_500));
    assert_eq!(config.max_tries, 20);
    assert_eq!(config.max_backoff, Duration::from_secs(5));
    let written = toml::to_string(&OutboxConfig::default()).unwrap();
    assert!(written.contains("min_backoff = 50"), "{written}");
    assert_eq!(
        toml::from_str::<OutboxConfig>(&written).unwrap(),
        OutboxConfig::default()
    );
    assert!(toml::from_str::<OutboxConfig>("lane_capcity = 3").is_err());
    assert_eq!(
        OutboxConfig::default().redrive_every,
        Duration::from_secs(10)
    );
    let config: OutboxConfig = toml::from_str("redrive_every = 750").unwrap();
    assert_eq!(config.redrive_every, Duration::from_millis(750));

    assert_eq!(OutboxConfig::default().validate(), Ok(()));
    let field = |c: OutboxConfig| match c.validate() {
        Err(Error::Config { field, .. }) => field,
        Ok(()) => "none",
    };
    let d = OutboxConfig::default();
    assert_eq!(
        field(OutboxConfig {
            lane_capacity: 0,
            ..d
        }),
        "lane_capacity"
    );
    assert_eq!(field(OutboxConfig { max_tries: 0, ..d }), "max_tries");
    assert_eq!(
        field(OutboxConfig {
            call_deadline: Duration::ZERO,
            ..d
        }),
        "call_deadline"
    );
    assert_eq!(
        field(OutboxConfig {
            min_backoff: Duration::ZERO,
            ..d
        }),
        "min_backoff"
    );
    assert_eq!(
        field(OutboxConfig {
            redrive_every: Duration::ZERO,
            ..d
        }),
        "redrive_every"
    );
    let backwards = OutboxConfig {
        min_backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(1),
        ..d
    };
    assert_eq!(
        backwards.validate().unwrap_err().to_string(),
        "outbox.max_backoff: must be at least min_backoff (2000 ms), got 1000 ms"
    );
}

#[tokio::test]
async fn start_refuses_a_bad_config() {
    let bad = OutboxConfig {
        lane_capacity: 0,
        ..OutboxConfig::default()
    };
    let (notify, cases) = clients(
        &FakeNotify::new("notification", Mode::Accept),
        &FakeCases::new("case-squad", Mode::Accept),
    );
    let e = Outbox::start(notify, cases, bad, Arc::new(MemoryDeadLetters::default())).unwrap_err();
    assert_eq!(
        e.to_string(),
        "outbox.lane_capacity: must be 1 to 10000000, got 0"
    );
}

/// Issue 5: an order dead-lettered while the notification service stayed down past every try
/// is not lost: it is parked, holds the delivered mark back, and the redrive delivers it once
/// the service is back, exactly once.
#[tokio::test(start_paused = true)]
async fn an_order_dead_lettered_during_a_long_outage_is_delivered_once_the_peer_is_back() {
    let config = OutboxConfig {
        max_tries: 3,
        redrive_every: Duration::from_secs(30),
        ..OutboxConfig::default()
    };
    let r = rig(config, Mode::Fail(Code::Unavailable), Mode::Accept);
    r.outbox.emit(vec![order("inc-1", "o-7")]);
    eventually("dead-lettered", || {
        r.outbox.stats().notification.dead_lettered == 1
    })
    .await;
    let stats = r.outbox.stats().notification;
    assert_eq!(
        (stats.pending, stats.parked, stats.undelivered()),
        (0, 1, 1)
    );
    assert!(r.letters.letters()[0].reason.redelivered());

    // Still down at the first redrives: tried again (3 tries each), parked again, never lost,
    // and recorded once.
    tokio::time::sleep(Duration::from_secs(65)).await;
    let stats = r.outbox.stats().notification;
    assert_eq!(stats.redriven, 2, "{stats:?}");
    assert_eq!(stats.dead_lettered, 1);
    assert_eq!(r.letters.recorded(), 1);
    assert_eq!(stats.parked, 1);
    assert_eq!(r.notify.calls(), 9);
    assert!(r.notify.labels().is_empty());

    r.notify.set_mode(Mode::Accept);
    eventually("delivered after the outage", || {
        r.notify.labels() == ["town-d01/inc-1/1"]
    })
    .await;
    let stats = r.outbox.stats().notification;
    assert_eq!(
        (stats.delivered, stats.parked, stats.pending, stats.redriven),
        (1, 0, 0, 3)
    );
    // Nothing more is sent: delivered once.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(r.notify.labels(), ["town-d01/inc-1/1"]);
}

/// However many times an undeliverable effect is sent again, even when each round of tries
/// outlasts the redrive period, it is one dead letter: one error line, one record.
#[tokio::test(start_paused = true)]
async fn an_effect_sent_again_and_again_is_one_dead_letter() {
    let config = OutboxConfig {
        max_tries: 3,
        redrive_every: Duration::from_millis(100),
        ..OutboxConfig::default()
    };
    let r = rig(config, Mode::Fail(Code::Unavailable), Mode::Accept);
    r.outbox.emit(vec![order("inc-1", "o-7")]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stats = r.outbox.stats().notification;
    assert!(stats.redriven >= 10, "{stats:?}");
    assert_eq!(stats.dead_lettered, 1);
    assert_eq!(r.letters.recorded(), 1);
    r.notify.set_mode(Mode::Accept);
    eventually("delivered", || r.notify.labels() == ["town-d01/inc-1/1"]).await;
    let stats = r.outbox.stats().notification;
    assert_eq!(
        (stats.delivered, stats.parked, stats.dead_lettered),
        (1, 0, 1)
    );
}

/// A refusal is final: the effect stays in the dead letters for an operator and is never sent
/// again, and it does not hold the delivered mark back.
#[tokio::test(start_paused = true)]
async fn a_refused_effect_is_never_sent_again() {
    let r = rig(
        OutboxConfig::default(),
        Mode::Accept,
        Mode::Fail(Code::InvalidArgument),
    );
    r.outbox.emit(vec![open_case("inc-9")]);
    eventually("dead-lettered", || {
        r.outbox.stats().case_squad.dead_lettered == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let stats = r.outbox.stats().case_squad;
    assert_eq!(
        (stats.parked, stats.redriven, stats.undelivered()),
        (0, 0, 0)
    );
    assert_eq!(r.cases.calls(), 1);
    assert!(!r.letters.letters()[0].reason.redelivered());
}

/// What a flush leaves is parked and never redriven by the closing outbox: the journal's next
/// owner delivers it (the delivered mark has not passed it).
#[tokio::test(start_paused = true)]
async fn what_a_flush_leaves_stays_parked_and_is_not_redriven() {
    let r = rig(OutboxConfig::default(), Mode::Hang, Mode::Accept);
    r.outbox
        .emit(vec![changed("inc-1", 1), changed("inc-2", 1)]);
    let report = r.outbox.flush(Duration::from_secs(1)).await;
    assert_eq!(report.notification_left, 2);
    assert_eq!(r.outbox.redrive(), 0);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stats = r.outbox.stats().notification;
    assert_eq!((stats.parked, stats.redriven), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn each_call_continues_the_trace_of_the_request_that_caused_its_effects() {
    let r = rig(OutboxConfig::default(), Mode::Accept, Mode::Accept);
    let submit = TraceContext::new_root();
    r.outbox.emit_traced(
        vec![
            changed("inc-1", 2),
            order("inc-1", "o-1"),
            open_case("inc-1"),
        ],
        Some(submit),
    );
    eventually("delivered", || {
        r.notify.labels().len() == 2 && r.cases.opened().len() == 1
    })
    .await;
    r.outbox.emit(vec![changed("inc-2", 2)]);
    eventually("untraced delivered", || r.notify.labels().len() == 3).await;
    // One publish for the traced batch, one for the untraced one; the case in the same trace.
    assert_eq!(r.notify.traces(), [Some(submit), None]);
    assert_eq!(r.cases.traces(), [Some(submit)]);
}
