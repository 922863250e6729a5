//! Which backend each service keeps its state in: Redis, the system of record, when a Redis URL
//! is configured (`--redis`, `DISPATCH_REDIS__URL`, `redis.url`); process memory otherwise (the
//! embedded default, lost with the process). One place for both run modes.

use std::sync::Arc;
use std::time::Duration;

use dispatch_bus::feed::{FeedHub, FeedLimits, FeedStore, RedisConfig, RedisFeedStore};
use dispatch_bus::ports::Directory;
use dispatch_bus::redis_conn;
use dispatch_case_squad::{CaseStore, MemoryCaseStore, RedisCaseStore, book};
use dispatch_core::clock::SharedClock;
use dispatch_district::journal::{Journal, MemoryJournal, RedisJournal};
use dispatch_district::outbox::{DeadLetterSink, MemoryDeadLetters, RedisDeadLetters};
use dispatch_district::supervision::{MemoryQuarantine, QuarantineSink, RedisQuarantine};
use dispatch_intake::{IncidentRecords, IntakeConfig, MemoryRecords, RedisRecords};
use dispatch_runtime::{Probe, ServeOptions};

/// How a service serves: it drains for at most `drain` after SIGTERM; with Redis, health
/// reports NOT_SERVING while Redis does not answer a `PING`, and SERVING again when it does.
///
/// Errors: a malformed Redis URL.
pub fn serve_options(redis: Option<&str>, drain: Duration) -> anyhow::Result<ServeOptions> {
    let mut options = ServeOptions {
        drain,
        ..ServeOptions::default()
    };
    if let Some(url) = redis {
        let con = redis_conn::connect(url)?;
        let probe: Probe = Arc::new(move || {
            let con = con.clone();
            Box::pin(async move { redis_conn::ping(&con).await })
        });
        options.dependency = Some(probe);
    }
    Ok(options)
}

/// The district journals. On Redis each append also writes its dispatch orders to the
/// officers' notification feeds of that Redis, laid out as [`feed_store`] lays them out
/// ([`RedisJournal::with_notices`]).
///
/// Errors: a malformed Redis URL.
pub fn journal(redis: Option<&str>) -> anyhow::Result<Arc<dyn Journal>> {
    Ok(match redis {
        Some(url) => Arc::new(RedisJournal::connect(url)?.with_notices(RedisConfig::default())),
        None => Arc::new(MemoryJournal::new()),
    })
}

/// Where the district outbox records dead letters: the Redis stream
/// [`RedisDeadLetters::KEY`] (kept after the node is gone), or the most recent ones in memory.
///
/// Errors: a malformed Redis URL.
pub fn dead_letters(redis: Option<&str>) -> anyhow::Result<Arc<dyn DeadLetterSink>> {
    Ok(match redis {
        Some(url) => Arc::new(RedisDeadLetters::connect(url)?),
        None => Arc::new(MemoryDeadLetters::default()),
    })
}

/// Where the district node records quarantined commands (commands that made a district panic
/// `supervision.quarantine_after` times): the Redis stream [`RedisQuarantine::KEY`] (kept after
/// the node is gone), or the most recent ones in memory.
///
/// Errors: a malformed Redis URL.
pub fn quarantine(redis: Option<&str>) -> anyhow::Result<Arc<dyn QuarantineSink>> {
    Ok(match redis {
        Some(url) => Arc::new(RedisQuarantine::connect(url)?),
        None => Arc::new(MemoryQuarantine::default()),
    })
}

/// Intake's records. Closed incidents are kept `intake.retention_s` seconds of cluster time
/// (converted to real time with `clock` for Redis's expiry).
///
/// Errors: a malformed Redis URL.
pub fn intake_records(
    redis: Option<&str>,
    clock: &SharedClock,
    intake: &IntakeConfig,
) -> anyhow::Result<Arc<dyn IncidentRecords>> {
    Ok(match redis {
        Some(url) => {
            // u64 seconds fit f64 exactly below 2^53.
            #[allow(clippy::cast_precision_loss)]
            let retention = clock.real_duration(intake.retention_s as f64);
            Arc::new(RedisRecords::connect(url, retention)?)
        }
        None => Arc::new(MemoryRecords::new()),
    })
}

/// The notification feeds (retention: [`FeedLimits::default`]; the district journals write to
/// the same feeds with the same [`RedisConfig`], see [`journal`]).
///
/// Errors: a malformed Redis URL.
pub async fn feed_store(
    redis: Option<&str>,
    clock: SharedClock,
) -> anyhow::Result<Arc<dyn FeedStore>> {
    Ok(match redis {
        Some(url) => Arc::new(RedisFeedStore::connect(url, clock, RedisConfig::default()).await?),
        None => Arc::new(FeedHub::new(clock, FeedLimits::default())),
    })
}

/// The case book of the stations of `directory`, `investigators` per squad.
///
/// Errors: a malformed Redis URL.
pub async fn case_store(
    redis: Option<&str>,
    directory: &Directory,
    investigators: u32,
) -> anyhow::Result<Arc<dyn CaseStore>> {
    let stations = book::station_ids(directory);
    Ok(match redis {
        Some(url) => Arc::new(RedisCaseStore::connect(url, stations, investigators).await?),
        None => Arc::new(MemoryCaseStore::new(stations, investigators)),
    })
}
