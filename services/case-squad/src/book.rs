//! The case book: every station's squad, its investigators' loads and its cases. Plain data,
//! no I/O; the service keeps one behind a lock.
//!
//! Assignment rule: a new case goes to the squad's investigator with the fewest open cases,
//! ties broken by investigator id, so cases spread round the squad in id order. Every case is
//! open until case updates arrive (a later issue), so a load is the number of cases assigned.

use std::collections::{BTreeMap, HashMap};

use dispatch_bus::convert::timestamp_to_wire;
use dispatch_bus::ports::Directory;
use dispatch_core::Timestamp;
use dispatch_proto::v1;

use crate::error::{Error, Result};
use crate::open::CaseRequest;

/// Investigators per station squad when not configured. An assumption: the source document
/// does not give squad sizes, only that each station keeps one case squad.
pub const DEFAULT_INVESTIGATORS_PER_SQUAD: u32 = 6;

/// What kind of case, from the incident's disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseKind {
    /// From `DISPOSITION_CRIMINAL_CASE`.
    Criminal,
    /// From `DISPOSITION_ADMINISTRATIVE_CASE`.
    Administrative,
}

impl CaseKind {
    /// The wire enum.
    pub fn to_wire(self) -> v1::CaseKind {
        match self {
            CaseKind::Criminal => v1::CaseKind::Criminal,
            CaseKind::Administrative => v1::CaseKind::Administrative,
        }
    }
}

/// One case of a squad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    /// The incident's `case_id` (`case-{station_id}-{incident_id}`), or `case-{incident_id}`
    /// for an incident cleared without one ([`crate::open::CaseRequest::case_id`]).
    pub case_id: String,
    /// The cleared incident it came from.
    pub incident_id: String,
    /// Station whose squad holds it.
    pub station_id: String,
    /// District that handed it over.
    pub district_id: String,
    /// Criminal or administrative.
    pub kind: CaseKind,
    /// Investigator it is assigned to.
    pub investigator_id: String,
    /// When it was opened (cluster clock).
    pub opened_at: Timestamp,
}

impl CaseRecord {
    /// The wire message.
    pub fn to_wire(&self) -> v1::Case {
        v1::Case {
            case_id: self.case_id.clone(),
            incident_id: self.incident_id.clone(),
            station_id: self.station_id.clone(),
            district_id: self.district_id.clone(),
            kind: self.kind.to_wire() as i32,
            investigator_id: self.investigator_id.clone(),
            opened_at: Some(timestamp_to_wire(self.opened_at)),
        }
    }
}

/// The case id of an incident that carries none: `case-{incident_id}`, the id every case got
/// before districts assigned case ids at clearance (`case-{station_id}-{incident_id}`).
pub fn case_id(incident_id: &str) -> String {
    format!("case-{incident_id}")
}

/// The id of investigator `n` (1-based) of `station_id`'s squad: `{station_id}-inv{nn}`.
pub fn investigator_id(station_id: &str, n: u32) -> String {
    format!("{station_id}-inv{n:02}")
}

/// The investigator ids of `station_id`'s squad of `investigators_per_squad`, in id (byte)
/// order: the order [`CaseBook`] breaks ties in, so every backend assigns alike.
pub fn squad_ids(station_id: &str, investigators_per_squad: u32) -> Vec<String> {
    let mut ids: Vec<String> = (1..=investigators_per_squad)
        .map(|n| investigator_id(station_id, n))
        .collect();
    // `{nn:02}` sorts numerically only up to 99 investigators; beyond, byte order decides.
    ids.sort();
    ids
}

/// The station ids of the geo-router's directory: one case squad each.
pub fn station_ids(directory: &Directory) -> Vec<String> {
    directory
        .stations
        .iter()
        .map(|s| s.id.to_string())
        .collect()
}

/// One squad as [`CaseBook::list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquadView<'a> {
    /// Its cases, by opening time then case id.
    pub cases: Vec<&'a CaseRecord>,
    /// Every investigator's open cases, by investigator id.
    pub loads: Vec<(&'a str, u32)>,
}

/// Result of [`CaseBook::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The incident's case.
    pub case: CaseRecord,
    /// False when the incident already had this case (nothing was assigned).
    pub created: bool,
}

#[derive(Debug, Default)]
struct Squad {
    /// Open cases per investigator, keyed (and so ordered) by investigator id.
    load: BTreeMap<String, u32>,
    case_ids: Vec<String>,
}

/// Every squad and case of the service.
#[derive(Debug, Default)]
pub struct CaseBook {
    squads: BTreeMap<String, Squad>,
    cases: HashMap<String, CaseRecord>,
    /// Incident id -> case id, for idempotent `OpenCase`.
    by_incident: HashMap<String, String>,
}

impl CaseBook {
    /// One squad of `investigators_per_squad` investigators per station id (duplicates count
    /// once).
    pub fn new(stations: impl IntoIterator<Item = String>, investigators_per_squad: u32) -> Self {
        let squads = stations
            .into_iter()
            .map(|station| {
                let load = squad_ids(&station, investigators_per_squad)
                    .into_iter()
                    .map(|id| (id, 0))
                    .collect();
                (
                    station,
                    Squad {
                        load,
                        case_ids: Vec::new(),
                    },
                )
            })
            .collect();
        Self {
            squads,
            ..Self::default()
        }
    }

    /// Opens the case of `req` at `at` under `req.case_id`, assigned to the least-loaded
    /// investigator of the station's squad; when the incident already has a case, returns it
    /// unchanged (whatever case id `req` names).
    ///
    /// Errors: [`Error::CaseIdTaken`] when another incident's case has `req.case_id`;
    /// [`Error::UnknownStation`], [`Error::NoInvestigators`].
    pub fn open(&mut self, req: &CaseRequest, at: Timestamp) -> Result<Opened> {
        if let Some(case) = self
            .by_incident
            .get(&req.incident_id)
            .and_then(|id| self.cases.get(id))
        {
            return Ok(Opened {
                case: case.clone(),
                created: false,
            });
        }
        if let Some(holder) = self.cases.get(&req.case_id) {
            return Err(Error::CaseIdTaken {
                case_id: req.case_id.clone(),
                incident_id: holder.incident_id.clone(),
            });
        }
        let squad = self
            .squads
            .get_mut(&req.station_id)
            .ok_or_else(|| Error::UnknownStation(req.station_id.clone()))?;
        // BTreeMap iterates in id order and min_by_key keeps the first minimum: ties go to the
        // lowest id.
        let (investigator, load) = squad
            .load
            .iter_mut()
            .min_by_key(|(_, load)| **load)
            .ok_or_else(|| Error::NoInvestigators(req.station_id.clone()))?;
        *load += 1;
        let case = CaseRecord {
            case_id: req.case_id.clone(),
            incident_id: req.incident_id.clone(),
            station_id: req.station_id.clone(),
            district_id: req.district_id.clone(),
            kind: req.kind,
            investigator_id: investigator.clone(),
            opened_at: at,
        };
        squad.case_ids.push(case.case_id.clone());
        self.by_incident
            .insert(case.incident_id.clone(), case.case_id.clone());
        self.cases.insert(case.case_id.clone(), case.clone());
        Ok(Opened {
            case,
            created: true,
        })
    }

    /// The case `case_id`. Errors: [`Error::UnknownCase`].
    pub fn get(&self, case_id: &str) -> Result<&CaseRecord> {
        self.cases
            .get(case_id)
            .ok_or_else(|| Error::UnknownCase(case_id.to_owned()))
    }

    /// The cases and loads of `station_id`'s squad.
    ///
    /// Errors: [`Error::UnknownStation`].
    pub fn list(&self, station_id: &str) -> Result<SquadView<'_>> {
        let squad = self
            .squads
            .get(station_id)
            .ok_or_else(|| Error::UnknownStation(station_id.to_owned()))?;
        let mut cases: Vec<&CaseRecord> = squad
            .case_ids
            .iter()
            .filter_map(|id| self.cases.get(id))
            .collect();
        cases.sort_by(|a, b| (a.opened_at, &a.case_id).cmp(&(b.opened_at, &b.case_id)));
        let loads = squad.load.iter().map(|(id, n)| (id.as_str(), *n)).collect();
        Ok(SquadView { cases, loads })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(incident: &str, station: &str) -> CaseRequest {
        CaseRequest {
            case_id: case_id(incident),
            incident_id: incident.into(),
            station_id: station.into(),
            district_id: format!("{station}-d1"),
            kind: CaseKind::Criminal,
        }
    }

    #[test]
    fn investigator_ids_are_one_based_and_two_digit() {
        assert_eq!(investigator_id("nc-st1", 1), "nc-st1-inv01");
        assert_eq!(investigator_id("nc-st1", 12), "nc-st1-inv12");
        let book = CaseBook::new(["a".to_string()], 3);
        let loads = book.list("a").unwrap().loads;
        assert_eq!(loads, vec![("a-inv01", 0), ("a-inv02", 0), ("a-inv03", 0)]);
        // Past 99 the ids are three digits and byte order puts inv100 after inv10.
        let ids = squad_ids("a", 100);
        assert_eq!(ids.len(), 100);
        assert_eq!(ids[9..12], ["a-inv10", "a-inv100", "a-inv11"]);
    }

    #[test]
    fn cases_go_round_the_squad_to_the_least_loaded() {
        let mut book = CaseBook::new(["a".to_string(), "b".to_string()], 3);
        // Loads start 0,0,0: case 1 -> inv01 (tie, lowest id), case 2 -> inv02, case 3 -> inv03,
        // then all are at 1 and case 4 goes back to inv01. Station b's squad is separate.
        let who = |book: &mut CaseBook, inc: &str, st: &str| {
            book.open(&req(inc, st), Timestamp(0))
                .unwrap()
                .case
                .investigator_id
        };
        assert_eq!(who(&mut book, "i1", "a"), "a-inv01");
        assert_eq!(who(&mut book, "i2", "a"), "a-inv02");
        assert_eq!(who(&mut book, "i3", "b"), "b-inv01");
        assert_eq!(who(&mut book, "i4", "a"), "a-inv03");
        assert_eq!(who(&mut book, "i5", "a"), "a-inv01");
        let SquadView { cases, loads } = book.list("a").unwrap();
        assert_eq!(cases.len(), 4);
        assert_eq!(loads, vec![("a-inv01", 2), ("a-inv02", 1), ("a-inv03", 1)]);
    }

    #[test]
    fn opening_twice_returns_the_same_case_without_a_second_assignment() {
        let mut book = CaseBook::new(["a".to_string()], 2);
        let first = book.open(&req("i1", "a"), Timestamp(10)).unwrap();
        assert!(first.created);
        assert_eq!(first.case.case_id, "case-i1");
        let again = book.open(&req("i1", "a"), Timestamp(99)).unwrap();
        assert!(!again.created);
        assert_eq!(again.case, first.case);
        let loads = book.list("a").unwrap().loads;
        assert_eq!(loads, vec![("a-inv01", 1), ("a-inv02", 0)]);
    }

    #[test]
    fn a_case_opens_under_the_id_asked_for_and_never_for_a_second_incident() {
        let mut book = CaseBook::new(["a".to_string()], 2);
        let mut r = req("i1", "a");
        r.case_id = "case-a-i1".into();
        let first = book.open(&r, Timestamp(10)).unwrap();
        assert_eq!(first.case.case_id, "case-a-i1");
        assert_eq!(book.get("case-a-i1").unwrap(), &first.case);
        // Idempotent on the incident, whatever id the repeat names.
        let again = book.open(&req("i1", "a"), Timestamp(20)).unwrap();
        assert_eq!((again.case, again.created), (first.case, false));
        // Another incident cannot take the id; nothing is assigned.
        let mut other = req("i2", "a");
        other.case_id = "case-a-i1".into();
        assert_eq!(
            book.open(&other, Timestamp(30)).unwrap_err(),
            Error::CaseIdTaken {
                case_id: "case-a-i1".into(),
                incident_id: "i1".into(),
            }
        );
        let loads = book.list("a").unwrap().loads;
        assert_eq!(loads, vec![("a-inv01", 1), ("a-inv02", 0)]);
    }

    #[test]
    fn listing_orders_by_opening_time_then_id() {
        let mut book = CaseBook::new(["a".to_string()], 2);
        book.open(&req("i9", "a"), Timestamp(5)).unwrap();
        book.open(&req("i2", "a"), Timestamp(7)).unwrap();
        book.open(&req("i1", "a"), Timestamp(5)).unwrap();
        let cases = book.list("a").unwrap().cases;
        let ids: Vec<&str> = cases.iter().map(|c| c.case_id.as_str()).collect();
        assert_eq!(ids, vec!["case-i1", "case-i9", "case-i2"]);
    }

    #[test]
    fn unknown_stations_cases_and_empty_squads_are_errors() {
        let mut book = CaseBook::new(["a".to_string()], 0);
        assert_eq!(
            book.open(&req("i1", "zz"), Timestamp(0)).unwrap_err(),
            Error::UnknownStation("zz".into())
        );
        assert_eq!(
            book.open(&req("i1", "a"), Timestamp(0)).unwrap_err(),
            Error::NoInvestigators("a".into())
        );
        assert_eq!(
            book.get("case-i1").unwrap_err(),
            Error::UnknownCase("case-i1".into())
        );
        assert_eq!(
            book.list("zz").unwrap_err(),
            Error::UnknownStation("zz".into())
        );
    }
}
