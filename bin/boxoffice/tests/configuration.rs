//! docs/configuration.md is the configuration reference, and it must be the code's: this test
//! reads the settings tree out of the binary itself and compares it with the keys the document's
//! tables name, both ways — a setting the code has and the document lacks fails, and so does a
//! documented setting the code does not know.
//!
//! The tree comes from `boxoffice check-config` (settings only, nothing started): a variable
//! naming an unknown key under a section is refused with the section's keys (`unknown field
//! `zzz`, expected one of `a`, `b`), a key under a leaf is refused as the wrong type, and a key
//! under a map (`services.<name>`) is accepted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test set-up may panic

use std::{
    collections::{BTreeSet, VecDeque},
    process::Command,
};

const BIN: &str = env!("CARGO_BIN_EXE_boxoffice");
const PROBE: &str = "zzz_probe";

/// What the binary says about a variable naming `path.zzz_probe`.
enum Probe {
    /// `path` is a section with these keys.
    Section(Vec<String>),
    /// `path` is a map: any key is a setting.
    Map,
    /// `path` is a value.
    Leaf,
}

fn env_name(path: &str) -> String {
    format!("BOXOFFICE_{}", path.replace('.', "__").to_uppercase())
}

fn probe(path: &str) -> Probe {
    let key = if path.is_empty() {
        PROBE.to_owned()
    } else {
        format!("{path}.{PROBE}")
    };
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("BOXOFFICE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.env(env_name(&key), "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return Probe::Map;
    }
    assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
    // serde: "unknown field `zzz_probe`, expected `a`", "... expected `a` or `b`",
    // "... expected one of `a`, `b`, `c`", "... there are no fields".
    match stderr.split_once(&format!("unknown field `{PROBE}`")) {
        Some((_, rest)) => Probe::Section(
            rest.lines()
                .next()
                .unwrap_or_default()
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect(),
        ),
        None => Probe::Leaf,
    }
}

/// Every setting of the code, dotted (`http.port`); a map's keys as `<NAME>`.
fn settings_of_the_code() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut queue = VecDeque::from([String::new()]);
    while let Some(path) = queue.pop_front() {
        match probe(&path) {
            Probe::Section(keys) => {
                for key in keys {
                    queue.push_back(if path.is_empty() {
                        key
                    } else {
                        format!("{path}.{key}")
                    });
                }
            }
            Probe::Map => {
                found.insert(format!("{path}.<NAME>"));
            }
            Probe::Leaf => {
                found.insert(path);
            }
        }
    }
    found
}

/// What the settings tables of docs/configuration.md and docs/services/*.md name in their `env`
/// column: full variable names (`BOXOFFICE_HTTP__PORT`; a `<placeholder>` as `<NAME>`), and
/// abbreviations, each as every name it can stand for (`..._PASSWORD` after
/// `BOXOFFICE_USER__ADMIN_EMAIL`: the previous full name with its last word or words replaced).
/// `BOXOFFICE_SEAT__...` (a pointer to another page) names nothing.
fn settings_of_the_documents() -> Vec<Vec<String>> {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs");
    let mut pages = vec![format!("{docs}/configuration.md")];
    for entry in std::fs::read_dir(format!("{docs}/services")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path.display().to_string());
        }
    }
    let placeholder = |name: &str| {
        name.split("__")
            .map(|part| {
                if part.starts_with('<') {
                    "<NAME>"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("__")
    };
    let mut found = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        let mut env_column: Option<usize> = None;
        for line in text.lines() {
            if !line.starts_with('|') {
                env_column = None;
                continue;
            }
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            let Some(column) = env_column else {
                env_column = cells.iter().position(|c| *c == "env");
                continue;
            };
            let Some(cell) = cells.get(column) else {
                continue;
            };
            let mut last_full: Option<String> = None;
            for (i, token) in cell.split('`').enumerate() {
                if i % 2 == 0 || token.ends_with("...") {
                    continue;
                }
                if let Some(suffix) = token.strip_prefix("...") {
                    let Some(full) = &last_full else { continue };
                    let readings = full
                        .match_indices('_')
                        .map(|(at, _)| placeholder(&format!("{}{suffix}", &full[..at])))
                        .collect();
                    found.push(readings);
                } else if token.starts_with("BOXOFFICE_") {
                    last_full = Some(token.to_owned());
                    found.push(vec![placeholder(token)]);
                }
            }
        }
    }
    found
}

/// Whether the documented variable `doc` names the code's `code`: equal, where a `<NAME>` part
/// of `doc` stands for any one part (`BOXOFFICE_USER__OAUTH__<NAME>__CLIENT_ID` names
/// `BOXOFFICE_USER__OAUTH__KAKAO__CLIENT_ID`, and a map's `BOXOFFICE_SERVICES__<NAME>`).
fn names(doc: &str, code: &str) -> bool {
    let (doc, code): (Vec<&str>, Vec<&str>) =
        (doc.split("__").collect(), code.split("__").collect());
    doc.len() == code.len() && doc.iter().zip(&code).all(|(d, c)| d == c || *d == "<NAME>")
}

#[test]
fn the_configuration_reference_names_every_setting_of_the_code_and_no_other() {
    let code: BTreeSet<String> = settings_of_the_code()
        .iter()
        .map(|path| env_name(path))
        .collect();
    assert!(
        code.len() > 100,
        "the probe found too few settings: {code:?}"
    );
    let documented = settings_of_the_documents();
    let named: Vec<&String> = documented.iter().flatten().collect();
    let undocumented: Vec<&String> = code
        .iter()
        .filter(|c| !named.iter().any(|d| names(d, c)))
        .collect();
    let unknown: Vec<&Vec<String>> = documented
        .iter()
        .filter(|readings| !readings.iter().any(|r| code.iter().any(|c| names(r, c))))
        .collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "the settings tables of docs/ and the code disagree.\n\
         settings of the code no table names ({}): {undocumented:#?}\n\
         documented variables the code does not have ({}): {unknown:#?}",
        undocumented.len(),
        unknown.len()
    );
}

#[test]
fn check_config_accepts_good_settings_and_names_a_bad_one() {
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("check-config");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("BOXOFFICE_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let ok = run(&[("BOXOFFICE_HTTP__PORT", "8101")]);
    assert!(ok.status.success(), "{ok:?}");
    let bad = run(&[("BOXOFFICE_HTTP__PORT", "eighty")]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("BOXOFFICE_HTTP__PORT"),
        "{bad:?}"
    );
}
