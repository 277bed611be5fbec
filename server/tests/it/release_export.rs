//! `railgun release export` through the real binary: a tree made by `railgun release
//! publish` is exported, served and checked like the original; tampered trees (artifact
//! bytes, a manifest substituted by another validly signed one, a channel state edited,
//! a missing artifact, the wrong keys) abort with the file named and write nothing. The
//! same tree read from an object store (`--object-store file:///…`, as `railgun serve
//! --object-store` keeps it) exports the same bytes; tampered there, it aborts naming the
//! object; an empty store is refused.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{railgun, railgun_ok, utf8, ChildServer};

/// Keys, a signed release and a tree published from it.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = Self { dir };
        let keys = f.keys();
        railgun_ok(&["keygen", "--out", utf8(&keys), "--name", "release"]);
        railgun_ok(&["keygen", "--out", utf8(&keys), "--name", "rollout"]);
        railgun_ok(&["keygen", "--out", utf8(&keys), "--name", "other"]);
        let dist = f.path("dist");
        std::fs::create_dir_all(&dist).expect("dist");
        std::fs::write(dist.join("rail-gun-0.2.0-linux-x64.tar.gz"), b"linux build").expect("a");
        std::fs::write(dist.join("rail-gun-0.2.0-darwin-arm64.zip"), b"mac build").expect("b");
        f.sign("0.2.0", &dist, &dist.join("manifest.json"), None);
        railgun_ok(&[
            "release",
            "publish",
            "--root",
            utf8(&f.root()),
            "--manifest",
            utf8(&dist.join("manifest.json")),
            "--key",
            utf8(&keys.join("release.key")),
            "--rollout-key",
            utf8(&keys.join("rollout.key")),
            // A stable release starts at its first stage (10 %); this tree serves everyone.
            "--percentage",
            "100",
        ]);
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn keys(&self) -> PathBuf {
        self.path("keys")
    }
    fn root(&self) -> PathBuf {
        self.path("tree")
    }

    fn sign(&self, version: &str, dist: &Path, out: &Path, notes: Option<&Path>) {
        let key = self.keys().join("release.key");
        let mut args = vec![
            "release",
            "sign",
            "--key",
            utf8(&key),
            "--app",
            "rail-gun",
            "--version",
            version,
            "--channel",
            "stable",
            "--artifacts",
            utf8(dist),
            "--out",
            utf8(out),
        ];
        if let Some(n) = notes {
            args.extend(["--notes", utf8(n)]);
        }
        railgun_ok(&args);
    }

    fn export(&self, root: &Path, out: &Path) -> Output {
        self.export_from(&["--root", utf8(root)], out)
    }

    /// `release export` of the tree in the object store at `url`.
    fn export_objects(&self, url: &str, out: &Path) -> Output {
        self.export_from(&["--object-store", url], out)
    }

    fn export_from(&self, from: &[&str], out: &Path) -> Output {
        let keys = self.keys();
        let (release, rollout) = (keys.join("release.pub"), keys.join("rollout.pub"));
        let mut args = vec!["release", "export"];
        args.extend_from_slice(from);
        args.extend([
            "--out",
            utf8(out),
            "--public-key",
            utf8(&release),
            "--rollout-public-key",
            utf8(&rollout),
        ]);
        railgun(&args)
    }

    /// A copy of the published tree whose linux artifact has other bytes of the same size.
    fn tampered_copy(&self, name: &str) -> PathBuf {
        let root = self.copy_tree(name);
        std::fs::write(
            root.join("rail-gun/releases/0.2.0/rail-gun-0.2.0-linux-x64.tar.gz"),
            b"evil build!",
        )
        .expect("tamper");
        root
    }

    /// A copy of the published tree to tamper with.
    fn copy_tree(&self, name: &str) -> PathBuf {
        let to = self.path(name);
        copy_dir(&self.root(), &to);
        to
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).expect("copy");
        }
    }
}

fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                go(root, &e.path(), out);
            } else {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .expect("rel")
                    .display()
                    .to_string();
                out.push((rel, std::fs::read(e.path()).expect("read")));
            }
        }
    }
    let mut v = Vec::new();
    go(root, root, &mut v);
    v.sort();
    v
}

/// Asserts a refused export: exit 1, the file named on stderr, no destination, no temp.
fn assert_refused(out: &Output, dest: &Path, names: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains(names),
        "error should name {names}: {stderr}"
    );
    assert!(!dest.exists(), "nothing written at {}", dest.display());
    let parent = dest.parent().expect("parent");
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .expect("read parent")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp-") || n.contains(".old-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary folders left: {leftovers:?}"
    );
    stderr
}

#[test]
fn exported_tree_is_the_verified_tree_and_serves_updates() {
    let f = Fixture::new();
    // A stray file no signed document names is not exported.
    std::fs::write(f.root().join("rail-gun/notes.txt"), b"draft").expect("stray");
    let out_dir = f.path("cdn");
    let out = f.export(&f.root(), &out_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 channel state(s), 1 release(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("not exported (no signed document names it): rail-gun/notes.txt"));

    let mut original = files(&f.root());
    original.retain(|(rel, _)| rel != "rail-gun/notes.txt");
    let mut exported = files(&out_dir);
    exported.retain(|(rel, _)| rel != ".railgun-export");
    assert_eq!(
        exported.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
        vec![
            "rail-gun/releases/0.2.0/manifest.json",
            "rail-gun/releases/0.2.0/rail-gun-0.2.0-darwin-arm64.zip",
            "rail-gun/releases/0.2.0/rail-gun-0.2.0-linux-x64.tar.gz",
            "rail-gun/stable/channel.json",
        ]
    );
    assert_eq!(exported, original, "byte for byte the published tree");

    // Exporting again replaces the previous export in place.
    let out = f.export(&f.root(), &out_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files(&out_dir).len(), 5);
    let leftovers = std::fs::read_dir(f.dir.path())
        .expect("read")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("cdn."))
        .count();
    assert_eq!(leftovers, 0, "no temporary or old folder left");

    // The export serves updates like the original tree.
    let server = ChildServer::serve(&out_dir, &f.path("data"), &[], &[]);
    let url = server.url.clone();
    let keys = f.keys();
    let check = railgun_ok(&[
        "check",
        "--url",
        &url,
        "--app",
        "rail-gun",
        "--public-key",
        utf8(&keys.join("release.pub")),
        "--rollout-public-key",
        utf8(&keys.join("rollout.pub")),
        "--current-version",
        "0.1.0",
        "--platform",
        "linux",
        "--arch",
        "x64",
        "--state",
        utf8(&f.path("client")),
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&check).expect("json");
    assert_eq!(json["update"], true, "{json}");
    assert_eq!(json["version"], "0.2.0");
    assert_eq!(json["artifact"]["size"], 11);
}

/// The `file://` URL of `dir`.
fn file_url(dir: &Path) -> String {
    url::Url::from_directory_path(dir)
        .expect("file url")
        .to_string()
}

#[test]
fn a_tree_in_an_object_store_exports_like_the_local_tree() {
    let f = Fixture::new();
    let local = f.path("from-root");
    let from_root = f.export(&f.root(), &local);
    let stored = f.path("from-store");
    let from_store = f.export_objects(&file_url(&f.root()), &stored);
    for out in [from_root, from_store] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 channel state(s), 1 release(s)"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(files(&stored), files(&local));
    // The snapshot read from the store is gone.
    let left: Vec<_> = std::fs::read_dir(f.dir.path())
        .expect("read")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".src-") || n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Tampered in the store: refused, naming the object, nothing written.
    let root = f.tampered_copy("t-store");
    let dest = f.path("cdn-tampered");
    let stderr = assert_refused(
        &f.export_objects(&file_url(&root), &dest),
        &dest,
        "rail-gun/releases/0.2.0/rail-gun-0.2.0-linux-x64.tar.gz",
    );
    assert!(
        stderr.contains("file://"),
        "the store's object, not a copy: {stderr}"
    );
    assert!(!stderr.contains(".src-"), "{stderr}");

    // An empty store (a wrong URL) replaces no previous export.
    let empty = f.path("empty-store");
    std::fs::create_dir_all(&empty).expect("empty");
    let out = f.export_objects(&file_url(&empty), &stored);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no object"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        files(&stored),
        files(&local),
        "the previous export is intact"
    );
    // One source at a time.
    let out = railgun(&[
        "release",
        "export",
        "--root",
        utf8(&f.root()),
        "--object-store",
        &file_url(&f.root()),
        "--out",
        utf8(&f.path("both")),
        "--public-key",
        utf8(&f.keys().join("release.pub")),
    ]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
}

#[test]
fn tampered_artifact_aborts_naming_it() {
    let f = Fixture::new();
    let root = f.tampered_copy("t1");
    let dest = f.path("cdn");
    let stderr = assert_refused(
        &f.export(&root, &dest),
        &dest,
        "rail-gun-0.2.0-linux-x64.tar.gz",
    );
    assert!(stderr.contains("expected 11 bytes"), "{stderr}");

    std::fs::remove_file(root.join("rail-gun/releases/0.2.0/rail-gun-0.2.0-linux-x64.tar.gz"))
        .expect("rm");
    let stderr = assert_refused(
        &f.export(&root, &dest),
        &dest,
        "rail-gun-0.2.0-linux-x64.tar.gz",
    );
    assert!(stderr.contains("no such file"), "{stderr}");
}

#[test]
fn manifest_substituted_by_another_validly_signed_one_aborts() {
    let f = Fixture::new();
    let root = f.copy_tree("t2");
    // A second manifest of the same version, signed by the real release key, other notes:
    // its signature verifies, but the channel state signed a different digest.
    let notes = f.path("notes.md");
    std::fs::write(&notes, "now with a backdoor").expect("notes");
    let forged = f.path("forged.json");
    f.sign("0.2.0", &f.path("dist"), &forged, Some(&notes));
    std::fs::copy(&forged, root.join("rail-gun/releases/0.2.0/manifest.json")).expect("swap");
    let dest = f.path("cdn");
    let stderr = assert_refused(&f.export(&root, &dest), &dest, "channel.json");
    assert!(stderr.contains("the channel state signs"), "{stderr}");
}

#[test]
fn edited_or_foreign_documents_abort_naming_them() {
    let f = Fixture::new();
    let dest = f.path("cdn");

    // One byte of the channel state's payload changed.
    let root = f.copy_tree("t3");
    let channel = root.join("rail-gun/stable/channel.json");
    let text = std::fs::read_to_string(&channel).expect("read");
    let env: serde_json::Value = serde_json::from_str(&text).expect("envelope");
    let payload = env["payload"].as_str().expect("payload");
    let flipped = if payload.starts_with('e') { "f" } else { "e" };
    let edited = text.replacen(payload, &format!("{flipped}{}", &payload[1..]), 1);
    std::fs::write(&channel, edited).expect("edit");
    let stderr = assert_refused(
        &f.export(&root, &dest),
        &dest,
        "rail-gun/stable/channel.json",
    );
    assert!(stderr.contains("signature"), "{stderr}");

    // A manifest signed by a key nobody trusts.
    let root = f.copy_tree("t4");
    let other = f.path("other.json");
    railgun_ok(&[
        "release",
        "sign",
        "--key",
        utf8(&f.keys().join("other.key")),
        "--app",
        "rail-gun",
        "--version",
        "0.2.0",
        "--artifacts",
        utf8(&f.path("dist")),
        "--out",
        utf8(&other),
    ]);
    std::fs::copy(&other, root.join("rail-gun/releases/0.2.0/manifest.json")).expect("swap");
    let stderr = assert_refused(
        &f.export(&root, &dest),
        &dest,
        "rail-gun/releases/0.2.0/manifest.json",
    );
    assert!(stderr.contains("signature"), "{stderr}");

    // The whole tree checked against the wrong rollout key.
    let out = railgun(&[
        "release",
        "export",
        "--root",
        utf8(&f.root()),
        "--out",
        utf8(&dest),
        "--public-key",
        utf8(&f.keys().join("release.pub")),
        "--rollout-public-key",
        utf8(&f.keys().join("other.pub")),
    ]);
    assert_refused(&out, &dest, "channel.json");
}

#[test]
fn refuses_destinations_that_are_not_exports() {
    let f = Fixture::new();
    // A folder with someone's files is never replaced.
    let dest = f.path("home");
    std::fs::create_dir_all(&dest).expect("mkdir");
    std::fs::write(dest.join("thesis.tex"), b"precious").expect("write");
    let out = f.export(&f.root(), &dest);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a previous export"));
    assert_eq!(
        std::fs::read(dest.join("thesis.tex")).expect("kept"),
        b"precious"
    );

    // Nor a folder inside the tree, nor one containing it.
    for dest in [f.root().join("cdn"), f.dir.path().to_path_buf()] {
        let out = f.export(&f.root(), &dest);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("outside the tree"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(f.root().join("rail-gun/stable/channel.json").is_file());
}
