//! ARCHITECTURE.md's "Where each subject is served" table against the code: every row names
//! a `Subjects` function that exists and a file holding the function it names, and every
//! endpoint a process registers has a row. A renamed handler or a new endpoint without a row
//! fails here, so the map a newcomer reads stays true.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (subject function, crate, file, function) for each row of the table.
fn rows() -> Vec<[String; 4]> {
    let doc = read("ARCHITECTURE.md");
    let start = doc
        .find("### Where each subject is served")
        .expect("ARCHITECTURE.md has the subject map");
    let section = &doc[start..];
    let end = section[4..].find("\n#").map_or(section.len(), |i| i + 4);
    section[..end]
        .lines()
        .filter(|l| l.starts_with("| `") && !l.starts_with("| `Subjects::`"))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect();
            assert_eq!(cells.len(), 4, "a row has four cells: {l}");
            [
                cells[0].clone(),
                cells[1].clone(),
                cells[2].clone(),
                cells[3].clone(),
            ]
        })
        .collect()
}

#[test]
fn every_row_names_code_that_exists() {
    let subjects = read("libs/schemas/src/subjects.rs");
    let rows = rows();
    assert!(rows.len() >= 15, "the table lost rows: {}", rows.len());
    for [subject, krate, file, function] in rows {
        assert!(
            subjects.contains(&format!("pub fn {subject}(")),
            "Subjects::{subject} does not exist"
        );
        let source = read(&file);
        assert!(
            source.contains(&format!("fn {function}("))
                || source.contains(&format!("fn {function}<")),
            "{file} has no fn {function} (row for {subject})"
        );
        let manifest = read(&format!("{}/Cargo.toml", crate_dir(&file)));
        assert!(
            manifest.contains(&format!("name = \"{krate}\"")),
            "{file} is not in crate {krate}"
        );
    }
}

/// The crate folder of a source file (the part before `/src/`).
fn crate_dir(file: &str) -> &str {
    &file[..file.find("/src/").expect("a source path")]
}

#[test]
fn every_registered_endpoint_has_a_row() {
    let listed: Vec<String> = rows().into_iter().map(|[s, ..]| s).collect();
    for process in ["broker", "auth", "gateway"] {
        let lib = read(&format!("processes/{process}/src/lib.rs"));
        let mut registered = 0;
        for (at, _) in lib.match_indices("endpoint_with(") {
            let call = &lib[at..];
            let subject = call
                .split("subjects.")
                .nth(1)
                .and_then(|rest| rest.split('(').next())
                .expect("an endpoint names its subject through `subjects.`");
            registered += 1;
            assert!(
                listed.iter().any(|l| l == subject),
                "{process} registers Subjects::{subject}, which ARCHITECTURE.md's map does not list"
            );
        }
        assert!(
            registered > 0,
            "{process} registers no endpoint: did the code move?"
        );
    }
}
