//! Typed ids: one newtype per kind of id, so an officer id cannot be passed where a dispatch id
//! is wanted.
//!
//! Each id is a thin wrapper around its `String`: serialized as the bare string
//! (`#[serde(transparent)]`, so journals and snapshots keep their JSON), ordered and hashed as
//! the string, and [`Borrow<str>`](std::borrow::Borrow) so a map keyed by ids is looked up
//! with a `&str`. Converting from a string never checks it: the wire rules (non-empty, length,
//! characters) are checked where requests come in (intake's validation, the bus's conversions),
//! which name the field that broke them.
//!
//! Two ids have a shape the cluster makes and relies on: [`DispatchId::new`]
//! (`{district_id}/{incident_id}/{n}`) and [`CaseId::for_incident`]
//! (`case-{station_id}-{incident_id}`).

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a string id newtype with the conversions every id shares.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as its string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        /// As the quoted string (`"inc-1"`), so messages that show ids with `{:?}` read the
        /// same as with a bare `String`.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Sound because Eq, Ord and Hash are derived from the one String field, which
        // compares and hashes as its str.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(id: &String) -> Self {
                Self(id.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

string_id! {
    /// An incident's cluster-wide id, assigned by intake (`inc-{ULID}` by default,
    /// `incident_id_prefix` in intake's config).
    IncidentId
}

string_id! {
    /// The 110 platform's id of a call; the idempotency key of reporting an incident.
    CallId
}

string_id! {
    /// A unit (officer) of a district's roster, e.g. `nancheng-d01-o07`.
    OfficerId
}

string_id! {
    /// A police district of the map, e.g. `nancheng-d01`: `{area slug}-d{nn}`, made by the map
    /// from lowercase letters, digits and dashes, so it contains no `/`, which
    /// [`DispatchId::district`] relies on.
    DistrictId
}

string_id! {
    /// A police station; each keeps one case squad.
    StationId
}

string_id! {
    /// A case at a station's case squad; see [`CaseId::for_incident`].
    CaseId
}

string_id! {
    /// One order sending one officer to one incident: the idempotency key of acknowledge,
    /// arrive and clear. Made by the owning district with [`DispatchId::new`].
    DispatchId
}

impl DispatchId {
    /// The id of dispatch `n` of `incident_id` by `district_id`:
    /// `{district_id}/{incident_id}/{n}`, n = 1 for the incident's first dispatch, counting
    /// up at every re-dispatch, e.g. `nancheng-d01/inc-01J9Z3/1`.
    ///
    /// The district prefix lets any service tell which district made (and owns) the dispatch
    /// without a lookup ([`district`](Self::district)); the incident id makes it unique
    /// cluster-wide, the count unique per incident. Deterministic, so a replayed journal makes
    /// the same ids.
    pub fn new(district_id: &DistrictId, incident_id: &IncidentId, n: u32) -> Self {
        Self(format!("{district_id}/{incident_id}/{n}"))
    }

    /// The district that made the dispatch: the text before the first `/` (district ids have
    /// none). `None` for an id without a `/`, such as one of the shape used before
    /// (`{incident_id}-{n}`) or one a client made up.
    pub fn district(&self) -> Option<&str> {
        self.0.split_once('/').map(|(district, _)| district)
    }
}

impl CaseId {
    /// The case id the district gives an incident it clears with a case-opening disposition
    /// ([`crate::Disposition::opens_case`]): `case-{station_id}-{incident_id}`, e.g.
    /// `case-nc-st1-inc-01J9Z3`.
    ///
    /// Derived from the incident alone (its station and id, both fixed once routed), so
    /// replaying a district's journal gives the same id, and unique because incident ids are.
    /// The station in the id tells a reader whose squad holds the case.
    pub fn for_incident(station_id: &StationId, incident_id: &IncidentId) -> Self {
        Self(format!("case-{station_id}-{incident_id}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    #[test]
    fn ids_serialize_as_the_bare_string() {
        let id = IncidentId::from("inc-01J9Z3");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""inc-01J9Z3""#);
        let back: IncidentId = serde_json::from_str(r#""inc-01J9Z3""#).unwrap();
        assert_eq!(back, id);
        let o: Option<DispatchId> = serde_json::from_str(r#""d1/I1/2""#).unwrap();
        assert_eq!(o, Some(DispatchId::from("d1/I1/2")));
        // As a map key too: the JSON of a snapshot's maps stays the same.
        let map = BTreeMap::from([(OfficerId::from("o1"), 3)]);
        assert_eq!(serde_json::to_string(&map).unwrap(), r#"{"o1":3}"#);
    }

    #[test]
    fn maps_keyed_by_ids_are_looked_up_by_str() {
        let mut by_hash = HashMap::new();
        by_hash.insert(IncidentId::from("I1"), 1);
        assert_eq!(by_hash.get("I1"), Some(&1));
        assert_eq!(by_hash.get("I2"), None);
        let by_order = BTreeMap::from([(OfficerId::from("b"), 2), (OfficerId::from("a"), 1)]);
        assert_eq!(by_order.get("a"), Some(&1));
        assert_eq!(
            by_order.keys().map(OfficerId::as_str).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn conversions_keep_the_text() {
        let id = CallId::from(String::from("call-7"));
        assert_eq!(id.as_str(), "call-7");
        assert_eq!(id.to_string(), "call-7");
        assert_eq!(format!("{id:?}"), r#""call-7""#);
        assert_eq!(AsRef::<str>::as_ref(&id), "call-7");
        assert_eq!(id, "call-7");
        assert_eq!("call-7", id);
        assert_eq!(id.into_string(), "call-7");
        // No validation: an empty id converts (the wire checks reject it earlier).
        assert_eq!(StationId::from(""), StationId::default());
    }

    #[test]
    fn dispatch_ids_name_district_incident_and_count() {
        let id = DispatchId::new(&"nancheng-d01".into(), &"inc-01J9Z3".into(), 2);
        assert_eq!(id, "nancheng-d01/inc-01J9Z3/2");
        assert_eq!(id.district(), Some("nancheng-d01"));
        // An incident id with a slash does not confuse the district.
        let odd = DispatchId::new(&"d1".into(), &"a/b".into(), 1);
        assert_eq!(odd, "d1/a/b/1");
        assert_eq!(odd.district(), Some("d1"));
        assert_eq!(DispatchId::from("I1-1").district(), None);
    }

    #[test]
    fn case_ids_name_station_and_incident() {
        let id = CaseId::for_incident(&"nc-st1".into(), &"inc-01J9Z3".into());
        assert_eq!(id, "case-nc-st1-inc-01J9Z3");
    }
}
