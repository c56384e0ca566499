//! README's "The format in one page" cannot drift from the format: each of its key tables
//! lists exactly the properties of one object of `schemas/runbook.schema.json` (which
//! `schema_and_init` keeps equal to the engine's), every object has its table, and the
//! section names every template helper the engine registers and the default shell.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The text of README's `## The format in one page`, up to the next `## ` heading.
fn format_section() -> String {
    let readme = read("README.md");
    let start = readme
        .find("\n## The format in one page\n")
        .expect("README has a `## The format in one page` section");
    let body = &readme[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |end| end + 3);
    body[..end].to_string()
}

/// The first-column keys of each table of `section` (rows like "| `key` | meaning |").
fn tables(section: &str) -> Vec<BTreeSet<String>> {
    let mut tables = Vec::new();
    let mut current: Option<BTreeSet<String>> = None;
    for line in section.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            tables.extend(current.take());
            continue;
        }
        let first = line
            .trim_matches('|')
            .split('|')
            .next()
            .unwrap_or_default()
            .trim();
        if first == "key" || first.starts_with("---") {
            current.get_or_insert_with(BTreeSet::new);
            continue;
        }
        let key = first
            .strip_prefix('`')
            .and_then(|rest| rest.strip_suffix('`'))
            .unwrap_or_else(|| panic!("a key column holds one `key`: {line}"));
        let table = current.get_or_insert_with(BTreeSet::new);
        assert!(table.insert(key.to_string()), "`{key}` twice in one table");
    }
    tables.extend(current);
    tables
}

/// Every object of the schema that has properties: (where, property names).
fn schema_objects(
    value: &serde_json::Value,
    place: &str,
    into: &mut Vec<(String, BTreeSet<String>)>,
) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(properties)) = map.get("properties") {
                into.push((place.to_string(), properties.keys().cloned().collect()));
            }
            for (key, inner) in map {
                schema_objects(inner, &format!("{place}/{key}"), into);
            }
        }
        serde_json::Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                schema_objects(inner, &format!("{place}[{index}]"), into);
            }
        }
        _ => {}
    }
}

#[test]
fn each_table_of_the_format_page_is_exactly_one_schema_object() {
    let schema: serde_json::Value =
        serde_json::from_str(&read("schemas/runbook.schema.json")).expect("the schema is JSON");
    let mut objects = Vec::new();
    schema_objects(&schema, "#", &mut objects);
    assert!(objects.len() >= 10, "{objects:?}");
    let tables = tables(&format_section());
    for (place, keys) in &objects {
        assert!(
            tables.contains(keys),
            "no table of README's format page lists exactly the keys of `{place}`: {keys:?}"
        );
    }
    for table in &tables {
        assert!(
            objects.iter().any(|(_, keys)| keys == table),
            "README's format page lists keys no schema object has exactly: {table:?}"
        );
    }
}

#[test]
fn the_format_page_names_every_template_helper_and_the_default_shell() {
    let section = format_section();
    let template = read("engine/template.rs");
    let start = template
        .find("const HELPER_NAMES")
        .expect("engine/template.rs declares HELPER_NAMES");
    let list = &template[start..];
    let list = &list[list.find("= &[").expect("a list") + 4..list.find("];").expect("its end")];
    let helpers: Vec<&str> = list
        .split(',')
        .map(|name| name.trim().trim_matches('"'))
        .filter(|name| !name.is_empty())
        .collect();
    assert!(helpers.contains(&"quote"), "{helpers:?}");
    for helper in helpers {
        assert!(
            section.contains(&format!("`{helper}`")) || section.contains(&format!("`{helper} ")),
            "README's format page does not name the helper `{helper}`"
        );
    }
    let shell = read("engine/validate/steps.rs");
    assert!(
        shell.contains(r#"["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]"#),
        "the default shell changed: update README's format page and this test"
    );
    assert!(section.contains("`bash --noprofile --norc -eo pipefail -c SCRIPT`"));
    assert!(section.contains("no nounset"));
    assert!(Path::new(&root().join("README.md")).is_file());
}
