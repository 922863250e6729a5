#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use dispatch_core::district::Command;

use super::*;

fn cancel(incident: &str) -> Command {
    Command::Cancel {
        incident_id: incident.into(),
    }
}

fn supervisor(quarantine_after: u32) -> (Supervisor, Arc<MemoryQuarantine>) {
    let sink = Arc::new(MemoryQuarantine::default());
    let config = SupervisionConfig { quarantine_after };
    (Supervisor::new(config, sink.clone()), sink)
}

#[test]
fn a_command_is_quarantined_at_its_nth_panic_and_recorded_once() {
    let (s, sink) = supervisor(3);
    let command = cancel("inc-1");
    let key = CommandKey::of("town-d01", &command);
    assert!(!s.watching());
    assert_eq!(s.quarantined(&key), None);
    assert_eq!(
        s.panicked(key.clone(), &command, "boom"),
        Verdict::Retry { tries: 1 }
    );
    assert!(s.watching());
    assert_eq!(
        s.panicked(key.clone(), &command, "boom"),
        Verdict::Retry { tries: 2 }
    );
    assert_eq!(s.quarantined(&key), None);
    assert_eq!(
        s.panicked(key.clone(), &command, "boom 3"),
        Verdict::Quarantined { tries: 3 }
    );
    assert_eq!(s.quarantined(&key), Some(3));
    assert_eq!(s.quarantined(&key), Some(3));
    assert_eq!(
        sink.records(),
        vec![QuarantineRecord {
            district: "town-d01".into(),
            kind: "cancel",
            incident: Some("inc-1".into()),
            officer: None,
            dispatch: None,
            tries: 3,
            panic: "boom 3".into(),
            command: r#"{"Cancel":{"incident_id":"inc-1"}}"#.into(),
        }]
    );
    assert_eq!(
        s.stats(),
        SupervisionStats {
            panics: 3,
            quarantined: 1,
            refused: 2,
            tracked: 1,
            forgotten: 0,
        }
    );
}

#[test]
fn commands_with_a_different_json_or_district_are_counted_apart() {
    let (s, sink) = supervisor(2);
    let one = cancel("inc-1");
    let two = cancel("inc-2");
    let k1 = CommandKey::of("town-d01", &one);
    let k2 = CommandKey::of("town-d01", &two);
    let k1_elsewhere = CommandKey::of("town-d02", &one);
    assert_eq!(
        s.panicked(k1.clone(), &one, "x"),
        Verdict::Retry { tries: 1 }
    );
    assert_eq!(
        s.panicked(k2.clone(), &two, "x"),
        Verdict::Retry { tries: 1 }
    );
    assert_eq!(
        s.panicked(k1_elsewhere.clone(), &one, "x"),
        Verdict::Retry { tries: 1 }
    );
    assert_eq!(
        s.panicked(k1.clone(), &one, "x"),
        Verdict::Quarantined { tries: 2 }
    );
    assert_eq!(s.quarantined(&k1), Some(2));
    assert_eq!(s.quarantined(&k2), None);
    assert_eq!(s.quarantined(&k1_elsewhere), None);
    assert_eq!(sink.recorded(), 1);
    assert_eq!(s.stats().tracked, 3);
}

#[test]
fn a_run_without_a_panic_forgets_the_count_but_not_a_quarantine() {
    let (s, _) = supervisor(2);
    let (one, two) = (cancel("inc-1"), cancel("inc-2"));
    let (k1, k2) = (
        CommandKey::of("town-d01", &one),
        CommandKey::of("town-d01", &two),
    );
    s.panicked(k1.clone(), &one, "x");
    s.ran(&k1);
    assert!(!s.watching());
    // Counted from 1 again: only panics in a row quarantine.
    assert_eq!(
        s.panicked(k1.clone(), &one, "x"),
        Verdict::Retry { tries: 1 }
    );
    s.panicked(k2.clone(), &two, "x");
    s.panicked(k2.clone(), &two, "x");
    s.ran(&k2);
    assert_eq!(s.quarantined(&k2), Some(2));
}

#[test]
fn past_the_bound_the_oldest_counted_command_is_forgotten_before_any_quarantined_one() {
    let (s, sink) = supervisor(2);
    // The first command is quarantined, then the map is filled with commands counted once.
    let first = cancel("inc-q");
    let kq = CommandKey::of("town-d01", &first);
    s.panicked(kq.clone(), &first, "x");
    s.panicked(kq.clone(), &first, "x");
    let commands: Vec<Command> = (0..Supervisor::MAX_TRACKED)
        .map(|n| cancel(&format!("inc-{n}")))
        .collect();
    for c in &commands[..Supervisor::MAX_TRACKED - 1] {
        s.panicked(CommandKey::of("town-d01", c), c, "x");
    }
    assert_eq!(s.stats().tracked, Supervisor::MAX_TRACKED);
    assert_eq!(s.stats().forgotten, 0);
    // One more: inc-0, the oldest counted one, goes; the quarantined one stays.
    let last = &commands[Supervisor::MAX_TRACKED - 1];
    s.panicked(CommandKey::of("town-d01", last), last, "x");
    let stats = s.stats();
    assert_eq!(
        (stats.tracked, stats.forgotten),
        (Supervisor::MAX_TRACKED, 1)
    );
    assert_eq!(s.quarantined(&kq), Some(2));
    let k0 = CommandKey::of("town-d01", &commands[0]);
    assert_eq!(
        s.panicked(k0, &commands[0], "x"),
        Verdict::Retry { tries: 1 }
    );
    // inc-1 was the oldest counted one then: counted twice, it would have been quarantined.
    let k1 = CommandKey::of("town-d01", &commands[1]);
    assert_eq!(
        s.panicked(k1, &commands[1], "x"),
        Verdict::Retry { tries: 1 }
    );
    assert_eq!(sink.recorded(), 1);
}

#[test]
fn a_record_names_what_its_command_names() {
    let step = Command::Clear {
        officer_id: "town-d01-o01".into(),
        dispatch_id: "town-d01/inc-1/1".into(),
        disposition: dispatch_core::Disposition::Resolved,
    };
    let r = QuarantineRecord::new(CommandKey::of("town-d01", &step), &step, 3, "boom");
    assert_eq!(r.kind, "clear");
    assert_eq!(r.incident, None);
    assert_eq!(r.officer.as_deref(), Some("town-d01-o01"));
    assert_eq!(r.dispatch.as_deref(), Some("town-d01/inc-1/1"));
    assert_eq!(serde_json::from_str::<Command>(&r.command).unwrap(), step);
}

#[test]
fn the_config_needs_at_least_one_try_and_defaults_to_three() {
    assert_eq!(SupervisionConfig::default().quarantine_after, 3);
    assert_eq!(
        SupervisionConfig {
            quarantine_after: 0
        }
        .validate(),
        Err("quarantine_after must be >= 1, got 0".to_owned())
    );
    assert_eq!(
        SupervisionConfig {
            quarantine_after: 1
        }
        .validate(),
        Ok(())
    );
}

#[test]
fn a_panic_message_is_read_from_either_payload() {
    let s = std::panic::catch_unwind(|| panic!("static text")).unwrap_err();
    assert_eq!(panic_message(&*s), "static text");
    let n = 7;
    let f = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
    assert_eq!(panic_message(&*f), "formatted 7");
    let other = std::panic::catch_unwind(|| std::panic::panic_any(42_u8)).unwrap_err();
    assert_eq!(panic_message(&*other), "panic without a message");
}
