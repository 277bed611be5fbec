//! A seeded generator of a desktop app's files and of its next version: the demo's
//! artifacts (a couple of hundred KiB) and the delta bench's (about 100 MiB) are the same
//! app at two sizes.
//!
//! The app, as shares of its size: a runtime binary (30 %, machine-code-like: partly
//! compressible), a bundled JS file (8 %, text), four native modules (4 % each,
//! machine-code-like), images (34 %, incompressible), locale JSON files (12 %), a launcher
//! script and a `VERSION` file. Build 1 differs from build 0 the way a next release does:
//! the JS bundle rebuilt with local edits (a few modules changed and added, a new build id
//! in its header), one native module recompiled (code inserted in its middle, so every
//! relative call that crosses the insertion moves), every locale given a few new strings and
//! one locale edited, a few new images and a JSON asset; the runtime, the other native
//! modules and the other images are unchanged. Everything is a function of (seed, size,
//! build): a run is reproducible. It refuses nothing: it only makes bytes.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use railgun_core::error::IoContext;
use railgun_core::net::{mix64, Rng, SplitMix64};
use railgun_core::Version;

use super::DemoError;

/// Names of the native modules (the second is the one build 1 recompiles).
const NATIVE: [&str; 4] = ["better-sqlite3", "sharp", "keytar", "node-pty"];
/// Locale codes, in the order their files are made.
const LOCALES: [&str; 12] = [
    "en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "ja", "ko", "zh",
];

/// What to generate: the app's approximate size and the seed of every byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppShape {
    /// Approximate size of build 0's files, bytes.
    pub size: u64,
    /// Seed of every random choice.
    pub seed: u64,
}

/// A generator for one (purpose, index) pair under the shape's seed.
fn rng(seed: u64, what: &str, index: u64) -> SplitMix64 {
    let mut h = seed ^ 0x5EED_0FA9;
    for b in what.bytes() {
        h = mix64(h ^ u64::from(b));
    }
    SplitMix64::new(mix64(h ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

fn below(r: &mut SplitMix64, n: u64) -> u64 {
    r.next_u64() % n.max(1)
}

/// `len` incompressible bytes.
fn noise(r: &mut SplitMix64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&r.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Machine-code-like bytes: short instructions from a small set, constants from a pool
/// (compressible), and 5-byte relative calls (mostly near, some far). With `insert`
/// (offset, length, seed) new code is inserted at that offset of the same stream, and every
/// call that crosses it is adjusted, as a recompiled module's are.
fn machine_code(seed: u64, what: &str, len: usize, insert: Option<(usize, usize, u64)>) -> Vec<u8> {
    let mut r = rng(seed, what, 0);
    let pool: Vec<[u8; 8]> = (0..64).map(|_| r.next_u64().to_le_bytes()).collect();
    let extra = insert.map_or(0, |(_, n, _)| n);
    let mut out = Vec::with_capacity(len + extra + 16);
    // Calls to fix once the final layout is known: (offset of the rel32 in `out`, target in
    // the base layout).
    let mut calls: Vec<(usize, usize)> = Vec::new();
    let mut base_pos = 0usize;
    let mut inserted = insert.is_none();
    let shift = |base: usize| match insert {
        Some((at, n, _)) if base >= at => base + n,
        _ => base,
    };
    while base_pos < len {
        if !inserted {
            if let Some((at, n, s)) = insert {
                if base_pos >= at {
                    out.extend_from_slice(&machine_code(s, "inserted code", n, None));
                    inserted = true;
                }
            }
        }
        let start = out.len();
        match below(&mut r, 16) {
            0..=3 => {
                let target = if below(&mut r, 10) < 7 {
                    let near = below(&mut r, 64 * 1024) as usize;
                    (base_pos + near).saturating_sub(32 * 1024).min(len - 1)
                } else {
                    below(&mut r, len as u64) as usize
                };
                out.push(0xE8);
                calls.push((out.len(), target));
                out.extend_from_slice(&[0; 4]);
            }
            4..=9 => {
                const MODRM: [u8; 6] = [0xC0, 0xC8, 0xD0, 0x45, 0x4D, 0x55];
                let imm =
                    (below(&mut r, 256) as u8) & if below(&mut r, 4) == 0 { 0xFF } else { 0x1F };
                out.extend_from_slice(&[0x48, 0x89, MODRM[below(&mut r, 6) as usize], imm]);
            }
            10..=12 => {
                const ONE: [u8; 8] = [0x50, 0x53, 0x55, 0x58, 0x5B, 0x5D, 0xC3, 0x90];
                out.push(ONE[below(&mut r, 8) as usize]);
            }
            _ => {
                let c = if below(&mut r, 3) == 0 {
                    r.next_u64().to_le_bytes()
                } else {
                    pool[below(&mut r, 64) as usize]
                };
                out.extend_from_slice(&[0x48, 0xB8]);
                out.extend_from_slice(&c);
            }
        }
        base_pos += out.len() - start;
    }
    // rel32 = target - end of the instruction, both in the final layout.
    let end_of = |at: usize| at + 4;
    for (at, target) in calls {
        if at + 4 > out.len() {
            continue;
        }
        let rel = shift(target) as i64 - end_of(at) as i64;
        out[at..at + 4].copy_from_slice(&(rel as i32).to_le_bytes());
    }
    out.truncate(len + extra);
    out
}

/// An identifier of the bundle's vocabulary.
fn ident(r: &mut SplitMix64) -> &'static str {
    const WORDS: [&str; 48] = [
        "state",
        "props",
        "message",
        "chat",
        "thread",
        "user",
        "render",
        "update",
        "dispatch",
        "store",
        "reducer",
        "action",
        "payload",
        "selector",
        "memo",
        "effect",
        "ref",
        "node",
        "element",
        "children",
        "key",
        "value",
        "index",
        "items",
        "list",
        "map",
        "filter",
        "reduce",
        "promise",
        "resolve",
        "reject",
        "callback",
        "event",
        "listener",
        "emit",
        "socket",
        "buffer",
        "attachment",
        "voice",
        "contact",
        "group",
        "avatar",
        "theme",
        "locale",
        "format",
        "timestamp",
        "cursor",
        "unread",
    ];
    WORDS[below(r, WORDS.len() as u64) as usize]
}

/// One statement of the bundle.
fn statement(r: &mut SplitMix64, out: &mut String) {
    let (a, b, c) = (ident(r), ident(r), ident(r));
    let n = below(r, 1000);
    let _ = match below(r, 6) {
        0 => writeln!(out, "    const {a}{n} = {b}.{c}({a}, {n});"),
        1 => writeln!(
            out,
            "    if ({a} && {b}.{c} !== {n}) {{ return {b}[{a}]; }}"
        ),
        2 => writeln!(
            out,
            "    {a}.{b} = function ({c}, e{n}) {{ return {c} + e{n} * {n}; }};"
        ),
        3 => writeln!(
            out,
            "    __webpack_require__(/*! ./{a}/{b} */ {n}).{c}({a});"
        ),
        4 => writeln!(out, "    {a}.emit(\"{b}:{c}\", {{ {a}, {b}: {n} }});"),
        _ => writeln!(out, "    for (const {a} of {b}.{c}s) {{ {a}.{b}({n}); }}"),
    };
}

/// One module of the bundle; `rev` > 0 replaces a few of its statements (a local edit).
fn js_module(seed: u64, index: u64, rev: u64, out: &mut String) {
    let mut r = rng(seed, "js module", index);
    let (a, b) = (ident(&mut r), ident(&mut r));
    let statements = 8 + below(&mut r, 40);
    let _ = writeln!(
        out,
        "/***/ \"./src/{a}/{b}{index}.js\":\n/***/ ((module, exports, __webpack_require__) => {{\n\"use strict\";"
    );
    let mut edit = rng(seed, "js edit", index ^ (rev << 40));
    let edited: Vec<u64> = if rev > 0 {
        (0..1 + below(&mut edit, 3))
            .map(|_| below(&mut edit, statements))
            .collect()
    } else {
        Vec::new()
    };
    for s in 0..statements {
        let mut sr = rng(seed, "js statement", (index << 16) ^ s);
        if edited.contains(&s) {
            statement(&mut edit, out);
        } else {
            statement(&mut sr, out);
        }
    }
    out.push_str("/***/ }),\n\n");
}

/// The bundled JS file of about `len` bytes.
fn bundle(seed: u64, app: &str, version: &Version, build: u32, len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(len + 4096);
    let build_id = mix64(seed ^ u64::from(build) ^ 0xB111D);
    let _ = writeln!(
        out,
        "/*! {app} {version} (build {build_id:016x}) */\n(() => {{ var __webpack_modules__ = ({{"
    );
    // Modules are ~1.4 KiB: build 1 edits 2 % of them and adds 1 % (at least one each).
    let modules = (len / 1400).max(4) as u64;
    let edits = (modules / 50).max(1);
    let added = (modules / 100).max(1);
    let mut r = rng(seed, "js plan", u64::from(build));
    let edited: Vec<u64> = (0..edits).map(|_| below(&mut r, modules)).collect();
    let new_at: Vec<u64> = (0..added).map(|_| below(&mut r, modules)).collect();
    for i in 0..modules {
        if out.len() >= len {
            break;
        }
        if build > 0 && new_at.contains(&i) {
            js_module(seed, 1_000_000 + i, 0, &mut out);
        }
        let rev = u64::from(build > 0 && edited.contains(&i));
        js_module(seed, i, rev, &mut out);
    }
    out.push_str("/***/ })\n});\n})();\n");
    out.into_bytes()
}

/// A locale file of about `len` bytes; build 1 adds strings, and edits some in `edited`.
fn locale(seed: u64, code: &str, build: u32, edited: bool, len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(len + 256);
    out.push_str("{\n");
    let mut i = 0u64;
    while out.len() < len {
        let mut r = rng(seed, code, i);
        if build > 0 && edited && below(&mut rng(seed, "locale edit", i), 50) == 0 {
            r = rng(seed, "locale edit text", i);
        }
        let words: Vec<&str> = (0..3 + below(&mut r, 9)).map(|_| ident(&mut r)).collect();
        let _ = writeln!(
            out,
            "  \"{}.{}.{i}\": \"{}\",",
            ident(&mut r),
            ident(&mut r),
            words.join(" ")
        );
        i += 1;
    }
    if build > 0 {
        for k in 0..3 {
            let _ = writeln!(
                out,
                "  \"voice.transcript.{k}\": \"{code} transcript {k}\","
            );
        }
    }
    out.push_str("  \"_\": \"\"\n}\n");
    out.into_bytes()
}

/// The files of `build` (0: a release, 1: its next version) of the app, by path.
pub fn app_files(
    shape: AppShape,
    app: &str,
    version: &Version,
    build: u32,
) -> Vec<(String, Vec<u8>)> {
    let seed = shape.seed;
    let share = |percent: u64| (shape.size * percent / 100) as usize;
    let mut files = vec![
        (
            format!("bin/{app}"),
            format!(
                "#!/bin/sh\nexec \"$(dirname \"$0\")/../lib/{app}-runtime\" --app resources/app \"$@\" # {app} {version}\n"
            )
            .into_bytes(),
        ),
        ("VERSION".to_string(), format!("{version}\n").into_bytes()),
        (
            format!("lib/{app}-runtime"),
            machine_code(seed, "runtime", share(30), None),
        ),
        (
            "resources/app/bundle.js".to_string(),
            bundle(seed, app, version, build, share(8)),
        ),
    ];
    for (i, name) in NATIVE.iter().enumerate() {
        let len = share(4);
        let insert = (build > 0 && i == 1).then(|| (len * 2 / 5, (len / 50).max(16), seed ^ 7));
        files.push((
            format!("resources/app/node_modules/{name}/build/Release/{name}.node"),
            machine_code(seed, name, len, insert),
        ));
    }
    // Images of uneven sizes summing to about 34 %.
    let images = (shape.size / (2 << 20)).max(3);
    let weights: Vec<u64> = (0..images)
        .map(|i| 1 + below(&mut rng(seed, "image size", i), 7))
        .collect();
    let total_weight: u64 = weights.iter().sum();
    for (i, w) in weights.iter().enumerate() {
        let len = share(34) * *w as usize / total_weight as usize;
        files.push((
            format!("resources/app/assets/img/{i:03}.png"),
            noise(&mut rng(seed, "image", i as u64), len),
        ));
    }
    let locales = ((shape.size / (4 << 20)) as usize).clamp(2, LOCALES.len());
    for (i, code) in LOCALES.iter().take(locales).enumerate() {
        files.push((
            format!("resources/app/locales/{code}.json"),
            locale(seed, code, build, i == 1, share(12) / locales),
        ));
    }
    if build > 0 {
        for i in 0..3u64 {
            let len = (shape.size * 4 / 1000).max(256) as usize;
            files.push((
                format!("resources/app/assets/img/new-{i}.png"),
                noise(&mut rng(seed, "new image", i), len),
            ));
        }
        files.push((
            "resources/app/assets/whats-new.json".to_string(),
            locale(
                seed,
                "whats-new",
                0,
                false,
                (shape.size / 500).max(256) as usize,
            ),
        ));
    }
    files
}

/// Writes `files` as a tar.gz (gzip's default level, mtime 0, `bin/` executable).
pub fn write_tar_gz(path: &Path, files: &[(String, Vec<u8>)]) -> Result<(), DemoError> {
    let f = fs::File::create(path).at(path)?;
    let gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(if name.starts_with("bin/") {
            0o755
        } else {
            0o644
        });
        h.set_mtime(0);
        b.append_data(&mut h, name, data.as_slice()).at(path)?;
    }
    let mut w = b.into_inner().at(path)?.finish().at(path)?;
    std::io::Write::flush(&mut w).at(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: AppShape = AppShape {
        size: 256 * 1024,
        seed: 3,
    };

    fn size(files: &[(String, Vec<u8>)]) -> usize {
        files.iter().map(|(_, d)| d.len()).sum()
    }

    #[test]
    fn the_same_seed_makes_the_same_app_and_the_next_build_shares_most_of_it() {
        let v1 = Version::new(0, 1, 0);
        let v2 = Version::new(0, 2, 0);
        let a = app_files(SHAPE, "app", &v1, 0);
        assert_eq!(a, app_files(SHAPE, "app", &v1, 0));
        let total = size(&a) as f64;
        assert!((total / SHAPE.size as f64 - 1.0).abs() < 0.1, "{total}");
        let b = app_files(SHAPE, "app", &v2, 1);
        let same: usize = b
            .iter()
            .filter(|f| a.contains(f))
            .map(|(_, d)| d.len())
            .sum();
        // Unchanged: the runtime, three native modules, the old images, one locale at most.
        assert!(same as f64 > 0.6 * total, "{same} of {total}");
        let changed: Vec<&str> = b
            .iter()
            .filter(|f| !a.contains(f))
            .map(|(n, _)| n.as_str())
            .collect();
        for expect in [
            "resources/app/bundle.js",
            "VERSION",
            "resources/app/assets/whats-new.json",
        ] {
            assert!(changed.contains(&expect), "{changed:?}");
        }
        let natives = changed.iter().filter(|n| n.ends_with(".node")).count();
        assert_eq!(natives, 1, "{changed:?}");
    }
}
