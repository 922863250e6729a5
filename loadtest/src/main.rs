//! `loadtest`: drives the dispatch cluster with a scenario and prints the 5-minute verdict.
//!
//! Exit code: 0 when the scenario's target is met and nothing was lost, 1 when not (or the run
//! broke on the way), 2 on bad input (scenario, files, flags).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use dispatch_loadtest::connect::{Addresses, replicas};
use dispatch_loadtest::geography::load_map;
use dispatch_loadtest::report::Verdict;
use dispatch_loadtest::run::{RunInput, Target, run};
use dispatch_loadtest::scenario::{MapSource, Scenario};
use dispatch_loadtest::{Error, Result, block_on_actix, html};

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Load-test harness of the 110 dispatch cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario against an embedded cluster (default) or a running one.
    Run(Box<RunArgs>),
    /// Check a scenario file and print what it would do, without running it.
    Check {
        /// The scenario file (TOML).
        scenario: PathBuf,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The scenario file (TOML).
    scenario: PathBuf,
    /// Write the report as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write the report as a self-contained HTML page with charts here.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// GeoJSON of sub-bureau areas, instead of the scenario's map.
    #[arg(long, value_name = "GEOJSON")]
    map: Option<PathBuf>,
    /// Population CSV for the map.
    #[arg(long, value_name = "CSV")]
    population: Option<PathBuf>,
    /// Drive a running cluster serving all five services on this address (host:port), or on
    /// each of a comma-separated list of replicas. It must run with the scenario's clock scale
    /// (`clock_scale`, `DISPATCH_CLOCK_SCALE`) and map.
    #[arg(long, value_name = "ADDR")]
    cluster: Option<String>,
    /// Intake address of a running cluster, or a comma-separated list of its replicas
    /// (overrides --cluster).
    #[arg(long, value_name = "ADDR")]
    intake: Option<String>,
    /// Notification address of a running cluster, or a comma-separated list of its replicas
    /// (overrides --cluster).
    #[arg(long, value_name = "ADDR")]
    notification: Option<String>,
    /// District-service address of a running cluster, or a comma-separated list of its replicas
    /// (overrides --cluster).
    #[arg(long, value_name = "ADDR")]
    district: Option<String>,
    /// Geo-router address of a running cluster, or a comma-separated list of its replicas
    /// (overrides --cluster).
    #[arg(long, value_name = "ADDR")]
    geo_router: Option<String>,
    /// Redis URL of a running cluster of district nodes (`redis://host:port`): watch the
    /// district leases and report the incidents that went through a takeover.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Case-squad address of a running cluster, or a comma-separated list of its replicas
    /// (overrides --cluster).
    #[arg(long, value_name = "ADDR")]
    case_squad: Option<String>,
}

impl RunArgs {
    /// Embedded unless an address is given; then all five must be known.
    fn target(&self) -> Result<Target> {
        let given = [
            ("--intake", &self.intake),
            ("--notification", &self.notification),
            ("--district", &self.district),
            ("--geo-router", &self.geo_router),
            ("--case-squad", &self.case_squad),
        ];
        if self.cluster.is_none() && given.iter().all(|(_, a)| a.is_none()) {
            return Ok(Target::Embedded);
        }
        let pick = |flag: &str, a: &Option<String>| {
            let (flag, list) = match (a, &self.cluster) {
                (Some(a), _) => (flag, a.clone()),
                (None, Some(c)) => ("--cluster", c.clone()),
                (None, None) => {
                    return Err(Error::Usage(format!(
                        "{flag} is missing: give all five service addresses or --cluster ADDR"
                    )));
                }
            };
            replicas(flag, &list)?;
            Ok(list)
        };
        Ok(Target::Remote(Addresses {
            intake: pick(given[0].0, given[0].1)?,
            notification: pick(given[1].0, given[1].1)?,
            district: pick(given[2].0, given[2].1)?,
            geo_router: pick(given[3].0, given[3].1)?,
            case_squad: pick(given[4].0, given[4].1)?,
        }))
    }

    /// The scenario's map, or the one given by flags.
    fn map_source(&self, scenario: &Scenario) -> Result<MapSource> {
        let from_file = scenario.map_source(scenario_dir(&self.scenario));
        match (&self.map, &self.population, from_file) {
            (Some(g), p, _) => Ok(MapSource::GeoJson {
                geojson: g.clone(),
                population: p.clone(),
            }),
            (None, Some(p), MapSource::GeoJson { geojson, .. }) => Ok(MapSource::GeoJson {
                geojson,
                population: Some(p.clone()),
            }),
            (None, Some(_), MapSource::Builtin) => Err(Error::Usage(
                "--population needs a GeoJSON map (--map, or geojson in the scenario)".into(),
            )),
            (None, None, source) => Ok(source),
        }
    }
}

fn scenario_dir(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes sure the report can be written to `path` before an hour-long run, not after it:
/// creates its folder and opens the file for writing (leaving no file behind that was not
/// there before).
///
/// Errors: [`Error::Write`] naming `path` (exit code 2, bad input).
fn writable(path: &Path) -> Result<()> {
    let failed = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(failed)?;
    if !existed {
        std::fs::remove_file(path).map_err(failed)?;
    }
    Ok(())
}

fn run_command(args: &RunArgs) -> Result<Verdict> {
    let scenario = Scenario::load(&args.scenario)?;
    let target = args.target()?;
    if args.redis.is_some() && target == Target::Embedded {
        return Err(Error::Usage(
            "--redis watches a running cluster's district leases: give its addresses too \
             (--cluster or the five service flags)"
                .into(),
        ));
    }
    for path in args.json.iter().chain(&args.html) {
        writable(path)?;
    }
    let source = args.map_source(&scenario)?;
    let started = std::time::Instant::now();
    let map = Arc::new(load_map(&source)?);
    tracing::info!(
        map = %map.name,
        sub_bureaus = map.sub_bureaus.len(),
        districts = map.districts.len(),
        "map loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let input = RunInput {
        scenario,
        map,
        map_desc: source.to_string(),
        target,
        redis: args.redis.clone(),
    };
    let output = block_on_actix(run(input))??;
    println!("{}", output.report.summary_text());
    if let Some(path) = &args.json {
        write(path, &output.report.to_json())?;
    }
    if let Some(path) = &args.html {
        write(path, &html::render(&output.report, &output.incidents))?;
    }
    Ok(output.report.verdict)
}

fn check_command(path: &Path) -> Result<()> {
    let s = Scenario::load(path)?;
    let source = s.map_source(scenario_dir(path));
    if let MapSource::GeoJson {
        geojson,
        population,
    } = &source
    {
        for p in std::iter::once(geojson).chain(population) {
            std::fs::metadata(p).map_err(|source| Error::Read {
                path: p.clone(),
                source,
            })?;
        }
    }
    println!("scenario   {} (seed {}) is valid", s.name, s.seed);
    println!("map        {source}");
    println!(
        "calls      ~{:.0} at {} /h over {} s of cluster time; drain up to {} s",
        s.expected_calls(),
        s.calls.peak_per_hour,
        s.calls.duration_s,
        s.calls.drain_s
    );
    println!(
        "real time  {:.0} s of calls at clock x{} (+ up to {:.0} s of drain)",
        s.call_phase_real_s(),
        s.clock.scale,
        s.calls.drain_s / s.clock.scale
    );
    println!(
        "target     {:.0}% within {} s",
        s.target.share * 100.0,
        s.target.response_s
    );
    Ok(())
}

fn main() -> ExitCode {
    dispatch_runtime::init_tracing("warn,dispatch_loadtest=info,loadtest=info");
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run_command(args).map(Verdict::exit_code),
        Command::Check { scenario } => check_command(scenario).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
