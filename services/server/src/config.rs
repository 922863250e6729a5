//! Layered configuration: defaults, then a TOML file, then `DISPATCH_*` environment variables
//! (nested keys joined by `__`, e.g. `DISPATCH_TRAVEL__SPEED_KMH=25`), then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dispatch_core::clock::MIN_EPOCH_MS;
use dispatch_core::{PositionRules, TravelModel};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything a service process needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where this process serves gRPC.
    pub listen: SocketAddr,
    /// Where the other services are (used in the one-service-per-process mode).
    pub peers: Peers,
    /// Which city map to load (geo-router and the embedded cluster).
    pub map: MapSource,
    /// Cluster seconds per real second: 1 in production; the load-test harness runs a scaled
    /// clock, and a separately started cluster must use the scenario's scale.
    pub clock_scale: f64,
    /// Cluster epoch, ms since the Unix epoch: on a scaled clock, cluster time is
    /// `clock_epoch_ms + (wall time - clock_epoch_ms) x clock_scale`
    /// ([`dispatch_core::ScaledClock::anchored`]). Every process of a cluster of separate
    /// processes on a scaled clock needs the same value, or each would count from its own start
    /// and response times would mix clocks; the embedded cluster (`all`) takes its own start
    /// when unset. Unused at scale 1.
    pub clock_epoch_ms: Option<i64>,
    /// ETA model of the dispatch rule.
    pub travel: TravelModel,
    /// Which position reports the districts trust, and how long a fix ranks an officer
    /// (`positions.future_tolerance_s` 30, `positions.max_accuracy_m` 1000,
    /// `positions.max_fix_age_s` 120; `positions.service_area` derived from the map when
    /// unset). See [`PositionRules`].
    pub positions: PositionRules,
    /// Officers on each district's roster (default 20: 346 officers in Nancheng's 17
    /// districts, source document, Dongguan 2012).
    pub officers_per_district: u32,
    /// Investigators in each station's case squad (an assumption; the source document gives no
    /// figure).
    pub investigators_per_squad: u32,
    /// Actix arbiters (threads) the district actors are spread over.
    pub arbiters: usize,
    /// Intake: incident ids, hand-off leases and deadlines, sweeper, retention.
    pub intake: dispatch_intake::IntakeConfig,
    /// Redis, the system of record of a multi-process cluster; unset: every service keeps its
    /// state in process memory (the embedded default, lost with the process).
    pub redis: RedisSettings,
    /// The district node's outbox: lane capacity, tries before a dead letter, call deadline,
    /// backoff (milliseconds).
    pub outbox: dispatch_district::outbox::OutboxConfig,
    /// The district node's supervision: a command that makes a district panic this many times
    /// (`supervision.quarantine_after`, default 3) is quarantined.
    pub supervision: dispatch_district::supervision::SupervisionConfig,
    /// After SIGTERM, how long running calls may finish before the process closes what is
    /// still open and exits, milliseconds (default 10,000: well inside Kubernetes' default 30 s
    /// grace period).
    pub drain_ms: u64,
    /// A district node's place in the cluster of district nodes (used with Redis only: a
    /// district process without Redis, and the embedded cluster, run every district).
    pub cluster: ClusterSettings,
}

/// How a district node (`run district` with Redis) joins the cluster of district nodes, and
/// the timings intake's placement follows too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// This node's id, unique in the cluster: 1 to 64 ASCII letters, digits, `.`, `_`, `-`
    /// (a pod name fits: `DISPATCH_CLUSTER__NODE_ID=$(POD_NAME)`). Unset: `district-` and a
    /// new ULID at every start ([`Config::node_id`]).
    pub node_id: Option<String>,
    /// The internal gRPC address (`host:port`) this node registers for intake and the other
    /// district nodes to reach it. Unset: the `listen` address, which only serves when that is
    /// reachable from the others (not `0.0.0.0`).
    pub advertise: Option<String>,
    /// Heartbeat, TTL, reconcile, lease and renewal periods, milliseconds
    /// (`[cluster.timings]`, e.g. `lease = 3000`); defaults and where they come from:
    /// [`dispatch_cluster::ClusterConfig`].
    pub timings: dispatch_cluster::ClusterConfig,
}

/// Where Redis is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`; unset: in-memory backends.
    pub url: Option<String>,
}

/// Addresses of the other services: each `host:port`, or a comma-separated list of the
/// replicas of that service (`host:port,host:port`; calls are balanced over them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Peers {
    /// Intake.
    pub intake: String,
    /// Geo-router.
    pub geo_router: String,
    /// District service.
    pub district: String,
    /// Case squad.
    pub case_squad: String,
    /// Notification.
    pub notification: String,
}

/// The city map: the built-in map when `geojson` is unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MapSource {
    /// GeoJSON FeatureCollection of sub-bureau areas (one feature per sub-bureau).
    pub geojson: Option<PathBuf>,
    /// CSV of populations (`name_zh,name_en,kind,population_2020`).
    pub population: Option<PathBuf>,
}

impl Peers {
    /// Checks that each peer is an address or a comma-separated list of replica addresses
    /// ([`dispatch_bus::ports::replicas`]).
    ///
    /// Errors: the first peer with an empty item or an address that is not a URI; the message
    /// starts with its key and names its flag, e.g. `peers.intake (--intake): replica 1 of
    /// "a:1,," is empty`.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (key, flag, list) in [
            ("intake", "--intake", &self.intake),
            ("geo_router", "--geo-router", &self.geo_router),
            ("district", "--district", &self.district),
            ("case_squad", "--case-squad", &self.case_squad),
            ("notification", "--notification", &self.notification),
        ] {
            if let Err(e) = dispatch_bus::ports::replicas(list) {
                anyhow::bail!("peers.{key} ({flag}): {e}");
            }
        }
        Ok(())
    }
}

impl Default for Peers {
    fn default() -> Self {
        Self {
            intake: "127.0.0.1:50051".into(),
            geo_router: "127.0.0.1:50052".into(),
            district: "127.0.0.1:50053".into(),
            case_squad: "127.0.0.1:50054".into(),
            notification: "127.0.0.1:50055".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            peers: Peers::default(),
            map: MapSource::default(),
            clock_scale: 1.0,
            clock_epoch_ms: None,
            travel: TravelModel::default(),
            positions: PositionRules::default(),
            officers_per_district: 20,
            investigators_per_squad: 6,
            arbiters: 2,
            intake: dispatch_intake::IntakeConfig::default(),
            redis: RedisSettings::default(),
            outbox: dispatch_district::outbox::OutboxConfig::default(),
            supervision: dispatch_district::supervision::SupervisionConfig::default(),
            drain_ms: 10_000,
            cluster: ClusterSettings::default(),
        }
    }
}

impl Config {
    /// Defaults, then `file` (if given), then the `DISPATCH_*` variables of `env` (pass
    /// `std::env::vars()` in a binary, your own list in a test).
    ///
    /// Errors: unreadable or malformed file, unknown keys, values of the wrong type, or a value
    /// that breaks a rule (see [`Config::validate`]); each names the key.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                anyhow::bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        // Key path (`travel.speed_kmh`) -> the variable that set it, to name it in errors.
        let mut from_env: Vec<(String, String)> = Vec::new();
        for (var, value) in env {
            let Some(rest) = var.strip_prefix("DISPATCH_") else {
                continue;
            };
            let key = rest.to_ascii_lowercase().replace("__", ".");
            let top = key.split('.').next().unwrap_or_default();
            // Kubernetes injects `<SERVICE>_PORT`, `<SERVICE>_SERVICE_HOST`... for a Service
            // named `dispatch`; only our own keys are configuration.
            if !TOP_LEVEL_KEYS.contains(&top) {
                tracing::warn!(variable = %var, "ignoring an environment variable that is not a configuration key");
                continue;
            }
            figment = figment.merge(Serialized::global(&key, parse_env_value(&value)));
            from_env.push((key, var));
        }
        let origin = |path: &str| {
            from_env
                .iter()
                .find(|(key, _)| key == path)
                .map(|(_, var)| format!(" (from {var})"))
                .unwrap_or_default()
        };
        let config: Config = figment.extract().map_err(|errors| {
            let lines: Vec<String> = errors
                .into_iter()
                .map(|e| {
                    let path = e.path.join(".");
                    let place = match &e.metadata {
                        Some(m) if m.name.contains("TOML") => format!(" (in {})", m.name),
                        _ => origin(&path),
                    };
                    format!("{path}: {}{place}", e.kind)
                })
                .collect();
            anyhow::anyhow!("invalid configuration: {}", lines.join("; "))
        })?;
        config.validate().map_err(|e| {
            let text = e.to_string();
            let key = text.split(' ').next().unwrap_or_default().to_owned();
            anyhow::anyhow!("{text}{}", origin(&key))
        })?;
        Ok(config)
    }

    /// Checks the rules: clock scale finite and > 0, clock epoch (when given) at least
    /// [`dispatch_core::clock::MIN_EPOCH_MS`] (milliseconds, not seconds), travel model valid, at
    /// least one officer per district, one investigator per squad and one arbiter, and a
    /// command quarantined after at least one panic.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.intake.validate().map_err(|e| anyhow::anyhow!(e))?;
        self.outbox
            .validate()
            .map_err(|e| anyhow::anyhow!("outbox: {e}"))?;
        self.supervision
            .validate()
            .map_err(|e| anyhow::anyhow!("supervision.{e}"))?;
        if self.drain_ms == 0 {
            anyhow::bail!("drain_ms must be > 0");
        }
        if let Some(url) = &self.redis.url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            anyhow::bail!("redis.url must start with redis:// or rediss://, got {url:?}");
        }
        if !self.clock_scale.is_finite() || self.clock_scale <= 0.0 {
            anyhow::bail!(
                "clock_scale must be a finite number > 0, got {}",
                self.clock_scale
            );
        }
        if let Some(epoch) = self.clock_epoch_ms
            && epoch < MIN_EPOCH_MS
        {
            anyhow::bail!(
                "clock_epoch_ms must be milliseconds since the Unix epoch, at least \
                 {MIN_EPOCH_MS} (2001-09-09T01:46:40Z), got {epoch}: was it given in seconds?"
            );
        }
        self.travel
            .validate()
            .map_err(|e| anyhow::anyhow!("travel.{e}"))?;
        self.positions
            .validate()
            .map_err(|e| anyhow::anyhow!("positions.{e}"))?;
        if self.officers_per_district == 0 {
            anyhow::bail!("officers_per_district must be >= 1, got 0");
        }
        if self.investigators_per_squad == 0 {
            anyhow::bail!("investigators_per_squad must be >= 1, got 0");
        }
        if self.arbiters == 0 {
            anyhow::bail!("arbiters must be >= 1, got 0");
        }
        self.peers.validate()?;
        self.validate_cluster()
    }

    /// The rules of `[cluster]`: a node id as [`dispatch_cluster::check_node_id`] says, an
    /// advertised address that makes a URI, timings as [`dispatch_cluster::ClusterConfig`]
    /// says; each error starts with the key (`cluster.timings.lease ...`).
    fn validate_cluster(&self) -> anyhow::Result<()> {
        let cluster = &self.cluster;
        if let Some(id) = &cluster.node_id
            && let Err(dispatch_cluster::Error::NodeId { id, rule }) =
                dispatch_cluster::check_node_id(id)
        {
            anyhow::bail!("cluster.node_id {rule}, got {id:?}");
        }
        if let Some(addr) = &cluster.advertise
            && (addr.is_empty()
                || addr.contains(',')
                || dispatch_bus::ports::replicas(addr).is_err())
        {
            anyhow::bail!("cluster.advertise must be a host:port address, got {addr:?}");
        }
        if let Err(dispatch_cluster::Error::Config { field, rule }) = cluster.timings.validate() {
            anyhow::bail!("cluster.timings.{field} {rule}");
        }
        Ok(())
    }

    /// This district node's id in the cluster: `cluster.node_id`, else `district-` and a new
    /// ULID (unique without coordination; a restarted node is a new member, and the old
    /// id's leases lapse as a crashed node's do).
    pub fn node_id(&self) -> String {
        self.cluster
            .node_id
            .clone()
            .unwrap_or_else(|| format!("district-{}", ulid::Ulid::generate()))
    }

    /// The address this district node registers: `cluster.advertise`, else `listen`.
    pub fn advertise(&self) -> String {
        self.cluster
            .advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// Whether the clock is scaled (anything but the wall clock's 1).
    pub fn scaled_clock(&self) -> bool {
        self.clock_scale != 1.0
    }

    /// Checks that this configuration can run one service among separate processes: on a
    /// scaled clock the cluster epoch must be given, the same for every process (the embedded
    /// cluster may start its clock from its own start instead).
    ///
    /// Errors: the scale is not 1 and `clock_epoch_ms` is unset.
    pub fn validate_separate_process(&self) -> anyhow::Result<()> {
        if self.scaled_clock() && self.clock_epoch_ms.is_none() {
            anyhow::bail!(
                "clock_epoch_ms is not set but clock_scale is {}: every process of the cluster \
                 needs the same --clock-epoch-ms (or DISPATCH_CLOCK_EPOCH_MS), e.g. \
                 `--clock-epoch-ms $(date +%s%3N)` computed once for all of them, or each \
                 process would count cluster time from its own start",
                self.clock_scale
            );
        }
        Ok(())
    }
}

/// The configuration's top-level keys; other `DISPATCH_*` variables are not ours.
const TOP_LEVEL_KEYS: [&str; 16] = [
    "listen",
    "peers",
    "map",
    "clock_scale",
    "clock_epoch_ms",
    "travel",
    "positions",
    "officers_per_district",
    "investigators_per_squad",
    "arbiters",
    "intake",
    "redis",
    "outbox",
    "supervision",
    "drain_ms",
    "cluster",
];

/// Environment values are strings; numbers and booleans are passed as such so they fit typed
/// fields.
fn parse_env_value(v: &str) -> figment::value::Value {
    if let Ok(i) = v.parse::<i64>() {
        return i.into();
    }
    if let Ok(f) = v.parse::<f64>() {
        return f.into();
    }
    if let Ok(b) = v.parse::<bool>() {
        return b.into();
    }
    v.to_owned().into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = std::env::temp_dir().join(format!("dispatch-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "officers_per_district = 7\nclock_scale = 60.0\n[travel]\nspeed_kmh = 25.0\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("DISPATCH_OFFICERS_PER_DISTRICT", "9"),
                ("DISPATCH_PEERS__INTAKE", "10.0.0.1:1"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.officers_per_district, 9); // env beats file
        assert_eq!(c.clock_scale, 60.0); // file beats default
        assert_eq!(c.travel.speed_kmh, 25.0);
        assert_eq!(c.travel.circuity, 1.4); // default kept
        assert_eq!(c.peers.intake, "10.0.0.1:1");
        assert_eq!(c.peers.district, "127.0.0.1:50053");
    }

    #[test]
    fn position_rules_are_configured_and_checked() {
        let c = Config::load(
            None,
            env(&[
                ("DISPATCH_POSITIONS__MAX_FIX_AGE_S", "60"),
                ("DISPATCH_POSITIONS__FUTURE_TOLERANCE_S", "10"),
            ]),
        )
        .unwrap();
        assert_eq!(c.positions.max_fix_age_s, 60.0);
        assert_eq!(c.positions.future_tolerance_s, 10.0);
        assert_eq!(c.positions.max_accuracy_m, 1_000.0); // default kept
        assert_eq!(c.positions.service_area, None); // derived from the map
        let err =
            Config::load(None, env(&[("DISPATCH_POSITIONS__MAX_ACCURACY_M", "-5")])).unwrap_err();
        assert!(
            err.to_string().contains("positions.max_accuracy_m"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::load(None, env(&[("DISPATCH_CLOCK_SCALE", "0")])).unwrap_err();
        assert!(err.to_string().contains("clock_scale"), "{err}");
        let err = Config::load(None, env(&[("DISPATCH_TRAVEL__CIRCUITY", "0.5")])).unwrap_err();
        assert!(err.to_string().contains("travel.circuity"), "{err}");
        let err = Config::load(Some(Path::new("/nonexistent/x.toml")), env(&[])).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
        let err = Config::load(None, env(&[("DISPATCH_CLOCK_SCALE", "abc")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("clock_scale") && text.contains("DISPATCH_CLOCK_SCALE"),
            "{text}"
        );
        assert!(
            !text.contains(".rs:"),
            "no source locations in errors: {text}"
        );
        let err = Config::load(None, env(&[("DISPATCH_CLOCK_SCALE", "0")])).unwrap_err();
        assert!(
            err.to_string().contains("(from DISPATCH_CLOCK_SCALE)"),
            "{err}"
        );
        let err = Config::load(None, env(&[("DISPATCH_TRAVEL__SPEED", "3")])).unwrap_err();
        assert!(err.to_string().contains("speed"), "{err}");
    }

    #[test]
    fn supervision_layers_and_needs_one_try() {
        assert_eq!(Config::default().supervision.quarantine_after, 3);
        let c = Config::load(
            None,
            env(&[("DISPATCH_SUPERVISION__QUARANTINE_AFTER", "5")]),
        )
        .unwrap();
        assert_eq!(c.supervision.quarantine_after, 5);
        let err = Config::load(
            None,
            env(&[("DISPATCH_SUPERVISION__QUARANTINE_AFTER", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "supervision.quarantine_after must be >= 1, got 0 \
             (from DISPATCH_SUPERVISION__QUARANTINE_AFTER)"
        );
    }

    #[test]
    fn clock_epoch_layers_from_file_and_environment() {
        let dir =
            std::env::temp_dir().join(format!("dispatch-config-epoch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "clock_scale = 60.0\nclock_epoch_ms = 1764000000000\n",
        )
        .unwrap();
        assert_eq!(Config::default().clock_epoch_ms, None);
        let c = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(c.clock_epoch_ms, Some(1_764_000_000_000));
        let c = Config::load(
            Some(&file),
            env(&[("DISPATCH_CLOCK_EPOCH_MS", "1764000123456")]),
        )
        .unwrap();
        assert_eq!(c.clock_epoch_ms, Some(1_764_000_123_456)); // env beats file
        assert_eq!(c.clock_scale, 60.0);
    }

    #[test]
    fn bad_clock_epochs_are_named() {
        // Seconds where milliseconds are meant.
        let err =
            Config::load(None, env(&[("DISPATCH_CLOCK_EPOCH_MS", "1764000000")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("clock_epoch_ms")
                && text.contains("got 1764000000")
                && text.contains("(from DISPATCH_CLOCK_EPOCH_MS)"),
            "{text}"
        );
        let err = Config::load(None, env(&[("DISPATCH_CLOCK_EPOCH_MS", "soon")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("clock_epoch_ms") && text.contains("DISPATCH_CLOCK_EPOCH_MS"),
            "{text}"
        );
    }

    #[test]
    fn a_separate_process_on_a_scaled_clock_needs_the_epoch() {
        let scaled = Config {
            clock_scale: 60.0,
            ..Config::default()
        };
        let err = scaled.validate_separate_process().unwrap_err().to_string();
        assert!(
            err.contains("--clock-epoch-ms") && err.contains("clock_scale is 60"),
            "{err}"
        );
        let anchored = Config {
            clock_epoch_ms: Some(1_764_000_000_000),
            ..scaled
        };
        assert!(anchored.validate_separate_process().is_ok());
        // The wall clock needs no epoch.
        assert!(Config::default().validate_separate_process().is_ok());
    }

    #[test]
    fn cluster_settings_layer_and_their_rules_name_the_key() {
        let dir =
            std::env::temp_dir().join(format!("dispatch-config-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "listen = \"10.1.2.3:50053\"\n[cluster]\nnode_id = \"pod-a\"\n\
             [cluster.timings]\nlease = 6000\nrenew_every = 2000\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("DISPATCH_CLUSTER__NODE_ID", "pod-b"),
                ("DISPATCH_CLUSTER__TIMINGS__NODE_TTL", "4000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.node_id(), "pod-b"); // env beats file
        assert_eq!(
            c.cluster.timings.lease,
            std::time::Duration::from_millis(6000)
        );
        assert_eq!(
            c.cluster.timings.renew_every,
            std::time::Duration::from_millis(2000)
        );
        assert_eq!(
            c.cluster.timings.node_ttl,
            std::time::Duration::from_millis(4000)
        );
        // The heartbeat keeps its default.
        assert_eq!(
            c.cluster.timings.heartbeat_every,
            std::time::Duration::from_millis(1000)
        );
        assert_eq!(
            c.advertise(),
            "10.1.2.3:50053",
            "defaults to the listen address"
        );

        let err = Config::load(None, env(&[("DISPATCH_CLUSTER__NODE_ID", "a b")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cluster.node_id")
                && text.contains("(from DISPATCH_CLUSTER__NODE_ID)"),
            "{text}"
        );
        let err =
            Config::load(None, env(&[("DISPATCH_CLUSTER__TIMINGS__LEASE", "500")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "cluster.timings.lease must be more than renew_every (1000 ms), got 500 ms"
            ) && text.contains("(from DISPATCH_CLUSTER__TIMINGS__LEASE)"),
            "{text}"
        );
        let err = Config::load(None, env(&[("DISPATCH_CLUSTER__ADVERTISE", "")])).unwrap_err();
        assert!(err.to_string().starts_with("cluster.advertise"), "{err}");
    }

    #[test]
    fn peers_take_replica_lists_and_a_bad_one_names_its_key_and_flag() {
        let c = Config::load(
            None,
            env(&[("DISPATCH_PEERS__NOTIFICATION", "10.0.0.1:1,10.0.0.2:1")]),
        )
        .unwrap();
        assert_eq!(c.peers.notification, "10.0.0.1:1,10.0.0.2:1");
        let err = Config::load(
            None,
            env(&[("DISPATCH_PEERS__INTAKE", "10.0.0.1:1,,10.0.0.2:1")]),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "peers.intake (--intake): replica 1 of \"10.0.0.1:1,,10.0.0.2:1\" is empty"
            ) && text.contains("(from DISPATCH_PEERS__INTAKE)"),
            "{text}"
        );
        let mut c = Config::default();
        c.peers.case_squad = "10.0.0.1:1,bad address".into();
        let text = c.validate().unwrap_err().to_string();
        assert!(
            text.starts_with("peers.case_squad (--case-squad): replica \"bad address\""),
            "{text}"
        );
        c.peers.case_squad = String::new();
        let text = c.validate().unwrap_err().to_string();
        assert!(
            text.starts_with("peers.case_squad (--case-squad): replica 0"),
            "{text}"
        );
    }

    #[test]
    fn a_node_without_an_id_gets_a_unique_valid_one() {
        let c = Config::default();
        let (a, b) = (c.node_id(), c.node_id());
        assert_ne!(a, b);
        assert!(a.starts_with("district-"), "{a}");
        assert!(dispatch_cluster::check_node_id(&a).is_ok(), "{a}");
        assert_eq!(c.advertise(), "127.0.0.1:50051");
    }

    #[test]
    fn variables_that_are_not_configuration_keys_are_ignored() {
        // What Kubernetes injects into pods for a Service named `dispatch`.
        let c = Config::load(
            None,
            env(&[
                ("DISPATCH_PORT", "tcp://10.96.0.10:50051"),
                ("DISPATCH_SERVICE_HOST", "10.96.0.10"),
            ]),
        )
        .unwrap();
        assert_eq!(c, Config::default());
    }
}
