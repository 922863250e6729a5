//! The GeoJSON and CSV loader: what it reads and how it fails (every error names the file, and
//! the line for the CSV). Uses small files written to Cargo's per-test temporary directory.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};

use dispatch_map::{CityMap, Error};

const TWO_TOWNS: &str = r#"{"type":"FeatureCollection","name":"twin","features":[
 {"type":"Feature","properties":{"name":"甲镇"},"geometry":{"type":"Polygon","coordinates":
   [[[113.70,23.00],[113.74,23.00],[113.74,23.04],[113.70,23.04],[113.70,23.00]]]}},
 {"type":"Feature","properties":{"name":"乙镇"},"geometry":{"type":"MultiPolygon","coordinates":
   [[[[113.74,23.00],[113.78,23.00],[113.78,23.04],[113.74,23.04],[113.74,23.00]]]]}}]}"#;

const POPULATION: &str = "name_zh,name_en,kind,population_2020\n\
甲镇,Jia Town,town,120000\n\
\"乙镇\",\"Yi'an\",town,50000\n";

/// Writes `text` to a fresh file named `name` in this test binary's temporary directory.
fn write(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dispatch-map-loader");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load(geojson: &str, csv: Option<&str>, tag: &str) -> Result<CityMap, Error> {
    let g = write(&format!("{tag}.geojson"), geojson);
    let c = csv.map(|c| write(&format!("{tag}.csv"), c));
    CityMap::from_geojson(&g, c.as_deref())
}

#[test]
fn loads_towns_with_populations_and_english_ids() {
    let map = load(TWO_TOWNS, Some(POPULATION), "ok").unwrap();
    assert_eq!(map.name, "twin");
    let ids: Vec<&str> = map.sub_bureaus.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["jia-town", "yian"]);
    let jia = map.sub_bureau("jia-town").unwrap();
    assert_eq!(
        (jia.name.as_str(), jia.name_en.as_str(), jia.population),
        ("甲镇", "Jia Town", 120_000)
    );
    // 120,000 / 24,605.2 = 4.88 -> 5 districts; 50,000 -> 2.03 -> 2.
    assert_eq!(
        map.districts
            .iter()
            .filter(|d| d.sub_bureau_id == "jia-town")
            .count(),
        5
    );
    assert_eq!(
        map.districts
            .iter()
            .filter(|d| d.sub_bureau_id == "yian")
            .count(),
        2
    );
    assert!(map.district("jia-town-d05").is_some());
    assert!(map.station("yian-s1").is_some());
}

#[test]
fn without_populations_ids_follow_file_order() {
    let map = load(TWO_TOWNS, None, "nocsv").unwrap();
    let ids: Vec<&str> = map.sub_bureaus.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["area-01", "area-02"]);
    assert_eq!(map.sub_bureaus[0].name, "甲镇");
    assert_eq!(map.sub_bureaus[0].name_en, "");
    assert!(!map.has_populations());
}

#[test]
fn unreadable_file_names_the_path() {
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-map.geojson");
    let err = CityMap::from_geojson(&missing, None).unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert!(err.to_string().contains("no-such-map.geojson"), "{err}");
}

#[test]
fn bad_geojson_is_reported() {
    let err = load("{ not json", None, "badjson").unwrap_err();
    assert!(matches!(err, Error::GeoJson { .. }), "{err}");
    assert!(err.to_string().contains("badjson.geojson"), "{err}");

    let feature = r#"{"type":"Feature","properties":{"name":"x"},"geometry":null}"#;
    let err = load(feature, None, "feature").unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFeatureCollection {
                kind: "Feature",
                ..
            }
        ),
        "{err}"
    );

    let no_name = TWO_TOWNS.replace(r#""name":"乙镇""#, r#""title":"乙镇""#);
    let err = load(&no_name, None, "noname").unwrap_err();
    assert!(
        matches!(err, Error::FeatureWithoutName { index: 1, .. }),
        "{err}"
    );

    let point = r#"{"type":"FeatureCollection","features":[{"type":"Feature",
        "properties":{"name":"点"},"geometry":{"type":"Point","coordinates":[113.7,23.0]}}]}"#;
    let err = load(point, None, "point").unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedGeometry { name, kind, .. } if name == "点" && kind == "Point"),
        "{err}"
    );

    let twice = TWO_TOWNS.replace("乙镇", "甲镇");
    let err = load(&twice, None, "twice").unwrap_err();
    assert!(
        matches!(&err, Error::Duplicate { what: "name", value, .. } if value == "甲镇"),
        "{err}"
    );

    let empty = r#"{"type":"FeatureCollection","features":[]}"#;
    assert!(matches!(load(empty, None, "empty"), Err(Error::NoAreas)));
}

#[test]
fn bad_population_rows_name_the_line() {
    let not_a_number = POPULATION.replace("50000", "fifty thousand");
    let err = load(TWO_TOWNS, Some(&not_a_number), "nan").unwrap_err();
    assert!(matches!(err, Error::CsvRow { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("nan.csv:3"), "{err}");
    assert!(err.to_string().contains("fifty thousand"), "{err}");

    let short_row = format!("{POPULATION}丙镇,Bing\n");
    let err = load(TWO_TOWNS, Some(&short_row), "short").unwrap_err();
    assert!(matches!(err, Error::CsvRow { line: 4, .. }), "{err}");

    let unknown = format!("{POPULATION}丙镇,Bing,town,1000\n");
    let err = load(TWO_TOWNS, Some(&unknown), "unknown").unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTown { line: 4, name, .. } if name == "丙镇"),
        "{err}"
    );

    let missing = "name_zh,name_en,kind,population_2020\n甲镇,Jia,town,1000\n";
    let err = load(TWO_TOWNS, Some(missing), "missing").unwrap_err();
    assert!(
        matches!(&err, Error::MissingPopulation { name, .. } if name == "乙镇"),
        "{err}"
    );

    let no_column = "name_zh,name_en,people\n甲镇,Jia,1000\n";
    let err = load(TWO_TOWNS, Some(no_column), "nocolumn").unwrap_err();
    assert!(matches!(err, Error::CsvRow { line: 1, .. }), "{err}");
    assert!(err.to_string().contains("population_2020"), "{err}");

    let repeated = format!("{POPULATION}甲镇,Jia,town,5\n");
    let err = load(TWO_TOWNS, Some(&repeated), "repeated").unwrap_err();
    assert!(matches!(err, Error::CsvRow { line: 4, .. }), "{err}");
}
