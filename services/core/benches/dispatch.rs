//! Cost of the district state machine at the source document's staffing: ~20 officers per
//! district (346 officers in Nancheng's 17 districts), with a backlog of 100 waiting calls.
//!
//! Each routine returns the state, so criterion drops it outside the timing. Figures go in
//! notes, never in assertions. Run: `cargo bench -p dispatch-core`.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dispatch_core::district::{DistrictConfig, DistrictState};
use dispatch_core::{
    Category, Disposition, Incident, IncidentState, LatLng, Officer, OfficerId, OfficerStatus,
    Timestamp,
};

const OFFICERS: usize = 20;
const BACKLOG: usize = 100;
const T0: Timestamp = Timestamp(1_700_000_000_000);

/// Deterministic spread over a ~3 km square around Nancheng (no RNG dependency).
fn spot(n: usize) -> LatLng {
    let h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let (a, b) = (
        (h >> 40) as f64 / 16_777_216.0,
        ((h >> 16) & 0xFF_FFFF) as f64 / 16_777_216.0,
    );
    LatLng::new(23.005 + a * 0.03, 113.735 + b * 0.03).unwrap()
}

fn incident(n: usize) -> Incident {
    let id = format!("I{n}");
    let category = Category::ALL[n % Category::ALL.len()];
    let at = T0.plus_seconds(n as f64);
    let mut i = Incident::received(
        id.clone().into(),
        id.into(),
        category,
        spot(n + 1_000),
        String::new(),
        at,
    );
    i.district_id = "d1".into();
    i.transition(IncidentState::Routed, at).unwrap();
    i
}

/// 20 officers signed on, nothing waiting.
fn free_district() -> DistrictState {
    let mut d = DistrictState::new("d1".into(), DistrictConfig::default());
    for n in 0..OFFICERS {
        let id = OfficerId::from(format!("o{n:02}"));
        d.add_officer(Officer::off_duty(id.clone(), "d1".into(), T0));
        d.set_officer_status(&id, OfficerStatus::Available, Some(spot(n)), T0)
            .unwrap();
    }
    d
}

/// Every officer busy on a call (o00 on scene), 100 more waiting.
fn saturated_district() -> DistrictState {
    let mut d = free_district();
    for n in 0..OFFICERS + BACKLOG {
        d.submit(incident(n), T0.plus_seconds(n as f64)).unwrap();
    }
    let o = d.officer("o00").unwrap().clone();
    d.arrive(
        &o.id,
        o.dispatch_id.as_ref().unwrap(),
        T0.plus_seconds(300.0),
    )
    .unwrap();
    assert_eq!(d.queue().len(), BACKLOG);
    d
}

fn bench(c: &mut Criterion) {
    let now = T0.plus_seconds(600.0);
    let free = free_district();
    c.bench_function("submit_and_dispatch/20_free_officers", |b| {
        b.iter_batched(
            || (free.clone(), incident(10_000)),
            |(mut d, i)| {
                let answer = d.submit(i, now).unwrap();
                (d, answer) // dropped outside the timing
            },
            BatchSize::SmallInput,
        )
    });

    let saturated = saturated_district();
    c.bench_function("submit_to_queue/20_engaged_100_waiting", |b| {
        b.iter_batched(
            || (saturated.clone(), incident(10_000)),
            |(mut d, i)| {
                let answer = d.submit(i, now).unwrap();
                (d, answer) // dropped outside the timing
            },
            BatchSize::SmallInput,
        )
    });

    let o00 = OfficerId::from("o00");
    let dispatch_id = saturated
        .officer("o00")
        .and_then(|o| o.dispatch_id.clone())
        .unwrap();
    c.bench_function("clear_and_dispatch_head/20_engaged_100_waiting", |b| {
        b.iter_batched(
            || saturated.clone(),
            |mut d| {
                let answer = d.clear(&o00, &dispatch_id, Disposition::Resolved, now);
                (d, answer.unwrap())
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
