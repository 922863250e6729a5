//! Reading the source areas of a map: outlines from GeoJSON, populations from CSV.
//!
//! This is the only part of the crate that touches files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use geo::{MultiPolygon, Polygon};

use crate::error::{Error, Result};

/// One sub-bureau's area as the source gives it, before overlaps are resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceArea {
    /// Stable ascii id (see [`slug`]), e.g. `nancheng`.
    pub id: String,
    /// Name in the source, e.g. `南城街道`.
    pub name: String,
    /// English name, e.g. `Nancheng`; empty when the source has none.
    pub name_en: String,
    /// Resident population, when known.
    pub population: Option<u64>,
    /// Outline, WGS84 lon/lat degrees (x = lon, y = lat).
    pub outline: MultiPolygon<f64>,
}

/// One row of a population file.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationRow {
    /// Source name, joined on the GeoJSON `name` property.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Resident population.
    pub population: u64,
    /// Line of the row in its file, from 1.
    pub line: usize,
}

/// Lowercase ascii slug of a name: letters and digits kept, apostrophes dropped, any other run
/// of characters becomes one dash. `"Chang'an"` -> `changan`, `"Songshan Lake"` ->
/// `songshan-lake`. Empty when the name has no ascii letter or digit.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else if c != '\'' && c != '\u{2019}' {
            dash = true;
        }
    }
    out
}

/// Whether `id` is a slug: non-empty, lowercase ascii letters and digits separated by single
/// dashes.
pub(crate) fn is_slug(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The areas of a GeoJSON `FeatureCollection` of Polygon/MultiPolygon features with a string
/// property `name`, joined with the populations of `population_csv` when given, plus the
/// collection's name (its foreign member `name`, else the file stem).
///
/// Ids: a feature's string property `name_en` if present, else the CSV's `name_en`, slugged;
/// else `area-01`, `area-02`... in file order.
///
/// Errors: [`Error::Read`], [`Error::GeoJson`], [`Error::NotFeatureCollection`],
/// [`Error::FeatureWithoutName`], [`Error::UnsupportedGeometry`], [`Error::Duplicate`], and the
/// CSV errors of [`read_population_csv`]; [`Error::UnknownTown`] for a CSV row matching no
/// feature and [`Error::MissingPopulation`] for a feature without a CSV row.
pub fn read_areas(
    geojson_path: &Path,
    population_csv: Option<&Path>,
) -> Result<(String, Vec<SourceArea>)> {
    let text = read_to_string(geojson_path)?;
    let path = || geojson_path.to_path_buf();
    let parsed: geojson::GeoJson = text.parse().map_err(|e| Error::GeoJson {
        path: path(),
        source: Box::new(e),
    })?;
    let collection = match parsed {
        geojson::GeoJson::FeatureCollection(fc) => fc,
        geojson::GeoJson::Feature(_) => {
            return Err(Error::NotFeatureCollection {
                path: path(),
                kind: "Feature",
            });
        }
        geojson::GeoJson::Geometry(_) => {
            return Err(Error::NotFeatureCollection {
                path: path(),
                kind: "Geometry",
            });
        }
    };
    let map_name = collection
        .foreign_members
        .as_ref()
        .and_then(|m| m.get("name"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| {
            geojson_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_default();

    let mut areas = Vec::with_capacity(collection.features.len());
    for (index, feature) in collection.features.iter().enumerate() {
        let prop = |key: &str| {
            feature
                .properties
                .as_ref()
                .and_then(|p| p.get(key))
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let name = prop("name").ok_or_else(|| Error::FeatureWithoutName {
            path: path(),
            index,
        })?;
        let outline = outline_of(feature, &name, geojson_path)?;
        if areas.iter().any(|a: &SourceArea| a.name == name) {
            return Err(Error::Duplicate {
                what: "name",
                value: name,
            });
        }
        areas.push(SourceArea {
            id: String::new(),
            name_en: prop("name_en").unwrap_or_default(),
            name,
            population: None,
            outline,
        });
    }

    if let Some(csv_path) = population_csv {
        let rows = read_population_csv(csv_path)?;
        let mut by_name: HashMap<&str, &PopulationRow> = HashMap::new();
        for row in &rows {
            if !areas.iter().any(|a| a.name == row.name_zh) {
                return Err(Error::UnknownTown {
                    path: csv_path.to_path_buf(),
                    line: row.line,
                    name: row.name_zh.clone(),
                });
            }
            if by_name.insert(row.name_zh.as_str(), row).is_some() {
                return Err(Error::CsvRow {
                    path: csv_path.to_path_buf(),
                    line: row.line,
                    reason: format!("town {} appears twice", row.name_zh),
                });
            }
        }
        for area in &mut areas {
            let row = by_name
                .get(area.name.as_str())
                .ok_or_else(|| Error::MissingPopulation {
                    path: csv_path.to_path_buf(),
                    name: area.name.clone(),
                })?;
            area.population = Some(row.population);
            if area.name_en.is_empty() {
                area.name_en = row.name_en.clone();
            }
        }
    }

    for (i, area) in areas.iter_mut().enumerate() {
        let id = slug(&area.name_en);
        area.id = if id.is_empty() {
            format!("area-{:02}", i + 1)
        } else {
            id
        };
    }
    Ok((map_name, areas))
}

fn outline_of(feature: &geojson::Feature, name: &str, path: &Path) -> Result<MultiPolygon<f64>> {
    let unsupported = |kind: &str| Error::UnsupportedGeometry {
        path: path.to_path_buf(),
        name: name.to_owned(),
        kind: kind.to_owned(),
    };
    let geometry = feature
        .geometry
        .as_ref()
        .ok_or_else(|| unsupported("none"))?;
    let kind = geometry.value.type_name();
    let geometry: geo::Geometry<f64> = (&geometry.value)
        .try_into()
        .map_err(|_| unsupported(kind))?;
    match geometry {
        geo::Geometry::Polygon(p) => Ok(MultiPolygon::new(vec![p])),
        geo::Geometry::MultiPolygon(mp) => Ok(mp),
        _ => Err(unsupported(kind)),
    }
}

/// Reads a population CSV: a header naming at least the columns `name_zh`, `name_en` and
/// `population_2020` (any order; others ignored), then one row per town. Fields may be
/// double-quoted; blank lines are skipped.
///
/// Errors: [`Error::Read`]; [`Error::CsvRow`] naming the line for a missing column, a wrong
/// field count, an empty name or a population that is not a whole number.
pub fn read_population_csv(path: &Path) -> Result<Vec<PopulationRow>> {
    let text = read_to_string(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let bad = |line: usize, reason: String| Error::CsvRow {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let (header_line, header) = lines
        .next()
        .ok_or_else(|| bad(1, "empty file, expected a header".to_owned()))?;
    let header = split_csv_line(header).map_err(|e| bad(header_line, e))?;
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| bad(header_line, format!("header has no column {name}")))
    };
    let (zh, en, pop) = (
        column("name_zh")?,
        column("name_en")?,
        column("population_2020")?,
    );
    let mut rows = Vec::new();
    for (line, text) in lines {
        let fields = split_csv_line(text).map_err(|e| bad(line, e))?;
        if fields.len() != header.len() {
            return Err(bad(
                line,
                format!("expected {} fields, got {}", header.len(), fields.len()),
            ));
        }
        let field = |i: usize| fields.get(i).map(|s| s.trim()).unwrap_or_default();
        let name_zh = field(zh);
        if name_zh.is_empty() {
            return Err(bad(line, "name_zh is empty".to_owned()));
        }
        let population = field(pop).parse::<u64>().map_err(|_| {
            bad(
                line,
                format!(
                    "population_2020 must be a whole number, got {:?}",
                    field(pop)
                ),
            )
        })?;
        rows.push(PopulationRow {
            name_zh: name_zh.to_owned(),
            name_en: field(en).to_owned(),
            population,
            line,
        });
    }
    Ok(rows)
}

/// Splits one CSV line (RFC 4180 quoting, `""` inside quotes is a quote).
fn split_csv_line(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".to_owned());
    }
    fields.push(field);
    Ok(fields)
}

fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: PathBuf::from(path),
        source,
    })
}

/// Checks every coordinate of `outline` is finite and in WGS84 range.
pub(crate) fn check_coordinates(name: &str, outline: &MultiPolygon<f64>) -> Result<()> {
    let rings = outline
        .iter()
        .flat_map(|p: &Polygon<f64>| std::iter::once(p.exterior()).chain(p.interiors()));
    for ring in rings {
        for c in ring.coords() {
            let ok = c.x.is_finite()
                && c.y.is_finite()
                && (-180.0..=180.0).contains(&c.x)
                && (-90.0..=90.0).contains(&c.y);
            if !ok {
                return Err(Error::BadCoordinate {
                    name: name.to_owned(),
                    lon: c.x,
                    lat: c.y,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slugs_from_english_names() {
        assert_eq!(slug("Chang'an"), "changan");
        assert_eq!(slug("Songshan Lake"), "songshan-lake");
        assert_eq!(slug("  Humen  Port "), "humen-port");
        assert_eq!(slug("Eco-park"), "eco-park");
        assert_eq!(slug("南城街道"), "");
        assert!(is_slug("songshan-lake") && is_slug("area-01"));
        assert!(!is_slug("") && !is_slug("a--b") && !is_slug("-a") && !is_slug("Nancheng"));
    }

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(
            split_csv_line(r#"a,"b, c","d ""e""",7"#).unwrap(),
            vec!["a", "b, c", "d \"e\"", "7"]
        );
        assert!(split_csv_line(r#"a,"b"#).is_err());
    }
}
