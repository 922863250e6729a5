//! The geo-router's directory ([`Directory`]) from `dispatch.v1.ListDistrictsResponse`.

use dispatch_proto::v1;

use super::{FieldError, latlng_from_wire};
use crate::ports::{Directory, DistrictEntry, StationEntry, SubBureauEntry};

/// `value` of `field`, which must not be empty.
fn required(value: &str, field: impl FnOnce() -> String) -> Result<&str, FieldError> {
    if value.is_empty() {
        Err(FieldError::new(field(), "is required"))
    } else {
        Ok(value)
    }
}

/// The directory from the wire. Errors name the field (e.g. `districts[3].center.lat`):
/// an empty id (`sub_bureaus[i].sub_bureau_id`, `stations[i].station_id`,
/// `stations[i].sub_bureau_id`, `stations[i].central_district_id`, `districts[i].district_id`,
/// `districts[i].station_id`, `districts[i].sub_bureau_id`,
/// `districts[i].adjacent_district_ids[j]`), or a station's `location` or a district's
/// `center` unset or not a valid point.
pub fn directory_from_wire(d: &v1::ListDistrictsResponse) -> Result<Directory, FieldError> {
    let sub_bureaus = d
        .sub_bureaus
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = required(&s.sub_bureau_id, || {
                format!("sub_bureaus[{i}].sub_bureau_id")
            })?;
            Ok(SubBureauEntry {
                id: id.to_owned(),
                name: s.name.clone(),
                population: s.population,
                area_m2: s.area_m2,
            })
        })
        .collect::<Result<_, FieldError>>()?;
    let stations = d
        .stations
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let field = |name: &str| format!("stations[{i}].{name}");
            Ok(StationEntry {
                id: required(&s.station_id, || field("station_id"))?.into(),
                sub_bureau_id: required(&s.sub_bureau_id, || field("sub_bureau_id"))?.to_owned(),
                central_district_id: required(&s.central_district_id, || {
                    field("central_district_id")
                })?
                .into(),
                location: latlng_from_wire(s.location.as_ref(), &field("location"))?,
            })
        })
        .collect::<Result<_, FieldError>>()?;
    let districts = d
        .districts
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let field = |name: &str| format!("districts[{i}].{name}");
            let adjacent = w
                .adjacent_district_ids
                .iter()
                .enumerate()
                .map(|(j, id)| {
                    required(id, || field(&format!("adjacent_district_ids[{j}]"))).map(Into::into)
                })
                .collect::<Result<_, FieldError>>()?;
            Ok(DistrictEntry {
                id: required(&w.district_id, || field("district_id"))?.into(),
                station_id: required(&w.station_id, || field("station_id"))?.into(),
                sub_bureau_id: required(&w.sub_bureau_id, || field("sub_bureau_id"))?.to_owned(),
                central: w.central,
                center: latlng_from_wire(w.center.as_ref(), &field("center"))?,
                area_m2: w.area_m2,
                adjacent,
            })
        })
        .collect::<Result<_, FieldError>>()?;
    Ok(Directory {
        map_name: d.map_name.clone(),
        sub_bureaus,
        stations,
        districts,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A two-district directory on the wire, written out field by field.
    fn wire() -> v1::ListDistrictsResponse {
        let point = |lat, lon| Some(v1::LatLng { lat, lon });
        v1::ListDistrictsResponse {
            map_name: "test".into(),
            sub_bureaus: vec![v1::SubBureau {
                sub_bureau_id: "nancheng".into(),
                name: "南城街道".into(),
                population: 332_000,
                area_m2: 5.7e7,
            }],
            stations: vec![v1::Station {
                station_id: "nancheng-s1".into(),
                sub_bureau_id: "nancheng".into(),
                central_district_id: "nancheng-d01".into(),
                location: point(23.01, 113.74),
            }],
            districts: vec![
                v1::District {
                    district_id: "nancheng-d01".into(),
                    station_id: "nancheng-s1".into(),
                    sub_bureau_id: "nancheng".into(),
                    central: true,
                    center: point(23.01, 113.74),
                    area_m2: 3.1e6,
                    adjacent_district_ids: vec!["nancheng-d02".into()],
                },
                v1::District {
                    district_id: "nancheng-d02".into(),
                    station_id: "nancheng-s1".into(),
                    sub_bureau_id: "nancheng".into(),
                    central: false,
                    center: point(23.02, 113.75),
                    area_m2: 2.4e6,
                    adjacent_district_ids: vec!["nancheng-d01".into()],
                },
            ],
        }
    }

    #[test]
    fn the_directory_reads_every_field() {
        let d = directory_from_wire(&wire()).unwrap();
        assert_eq!(d.map_name, "test");
        assert_eq!(
            d.sub_bureaus,
            vec![SubBureauEntry {
                id: "nancheng".into(),
                name: "南城街道".into(),
                population: 332_000,
                area_m2: 5.7e7,
            }]
        );
        assert_eq!(
            d.stations,
            vec![StationEntry {
                id: "nancheng-s1".into(),
                sub_bureau_id: "nancheng".into(),
                central_district_id: "nancheng-d01".into(),
                location: dispatch_core::LatLng::new(23.01, 113.74).unwrap(),
            }]
        );
        assert_eq!(d.districts.len(), 2);
        assert_eq!(
            (d.districts[0].id.as_str(), d.districts[0].central),
            ("nancheng-d01", true)
        );
        assert_eq!(
            d.districts[1],
            DistrictEntry {
                id: "nancheng-d02".into(),
                station_id: "nancheng-s1".into(),
                sub_bureau_id: "nancheng".into(),
                central: false,
                center: dispatch_core::LatLng::new(23.02, 113.75).unwrap(),
                area_m2: 2.4e6,
                adjacent: vec!["nancheng-d01".into()],
            }
        );
    }

    #[test]
    fn a_bad_entry_is_named_by_index() {
        let mut w = wire();
        w.districts[1].district_id.clear();
        assert_eq!(
            directory_from_wire(&w).unwrap_err().field,
            "districts[1].district_id"
        );
        let mut w = wire();
        w.districts[0].center = None;
        assert_eq!(
            directory_from_wire(&w).unwrap_err().field,
            "districts[0].center"
        );
        let mut w = wire();
        w.districts[1].adjacent_district_ids[0].clear();
        assert_eq!(
            directory_from_wire(&w).unwrap_err().field,
            "districts[1].adjacent_district_ids[0]"
        );
        let mut w = wire();
        w.stations[0].location = Some(v1::LatLng {
            lat: 91.0,
            lon: 113.0,
        });
        assert_eq!(
            directory_from_wire(&w).unwrap_err().field,
            "stations[0].location.lat"
        );
        let mut w = wire();
        w.stations[0].central_district_id.clear();
        assert_eq!(
            directory_from_wire(&w).unwrap_err().field,
            "stations[0].central_district_id"
        );
        let mut w = wire();
        w.sub_bureaus[0].sub_bureau_id.clear();
        assert_eq!(
            directory_from_wire(&w).unwrap_err().field,
            "sub_bureaus[0].sub_bureau_id"
        );
    }
}
