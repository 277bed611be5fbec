//! Install: tar-slip / zip-slip archives refused with nothing written outside, atomic
//! switch and rollback, pruning, the boot guard, and SIGKILL during apply.

use crate::child::{child_command, stdout_lines};

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use railgun_core::update::{
    extract_tar_gz, ArchiveInstaller, BootGuard, Format, InstallError, InstallRoot, Installer,
    StartupOutcome,
};
use railgun_core::Version;

fn v(s: &str) -> Version {
    s.parse().expect("version")
}

/// A tar.gz of regular files.
fn tar_gz(path: &Path, files: &[(&str, &[u8])]) {
    let f = fs::File::create(path).expect("create");
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gz");
}

/// Raw entry: name written into the header bytes as-is (bypassing tar's own checks).
enum E<'a> {
    File(&'a str, &'a [u8]),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Fifo(&'a str),
}

fn raw_tar_gz(path: &Path, entries: &[E<'_>]) {
    let f = fs::File::create(path).expect("create");
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_old();
        let (name, kind, data, link): (&str, tar::EntryType, &[u8], Option<&str>) = match e {
            E::File(n, d) => (n, tar::EntryType::Regular, d, None),
            E::Sym(n, t) => (n, tar::EntryType::Symlink, b"", Some(t)),
            E::Hard(n, t) => (n, tar::EntryType::Link, b"", Some(t)),
            E::Fifo(n) => (n, tar::EntryType::Fifo, b"", None),
        };
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gz");
}

fn zip_file(path: &Path, entries: &[(&str, &[u8])], symlink: Option<(&str, &str)>) {
    let f = fs::File::create(path).expect("create");
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (n, d) in entries {
        z.start_file(*n, opts).expect("start");
        z.write_all(d).expect("write");
    }
    if let Some((n, t)) = symlink {
        z.add_symlink(n, t, opts).expect("symlink");
    }
    z.finish().expect("finish");
}

/// Every path under `dir` (relative), sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).expect("prefix").to_path_buf());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Installs a hostile tar.gz and checks it is refused with nothing left anywhere.
fn refused(entries: &[E<'_>], why: &str) {
    let t = tempfile::tempdir().expect("tmp");
    let sandbox = t.path().join("sandbox"); // holds root/ and everything an escape could hit
    let root = sandbox.join("a/b/root");
    fs::create_dir_all(&root).expect("mkdir");
    let archive = t.path().join("evil.tar.gz");
    raw_tar_gz(&archive, entries);
    let before = tree(&sandbox);
    let inst = ArchiveInstaller::new(InstallRoot::new(&root), Format::TarGz);
    let r = inst.install(&archive, &v("0.2.0"));
    assert!(
        matches!(r, Err(InstallError::UnsafeEntry { .. })),
        "{why}: {r:?}"
    );
    assert_eq!(tree(&sandbox), before, "{why}: files left behind");
    assert!(InstallRoot::new(&root).current_version().is_none());
}

#[test]
fn refuses_parent_dir_entries() {
    refused(
        &[E::File("ok.txt", b"ok"), E::File("../evil", b"x")],
        "../evil",
    );
    refused(&[E::File("a/../../../evil", b"x")], "nested ..");
}

#[test]
fn refuses_absolute_paths() {
    refused(&[E::File("/tmp/railgun-evil-abs", b"x")], "absolute");
    assert!(!Path::new("/tmp/railgun-evil-abs").exists());
}

#[test]
fn refuses_links_pointing_outside() {
    refused(&[E::Sym("etc", "/etc")], "link to /etc");
    refused(&[E::Sym("up", "../../..")], "link up");
    refused(&[E::Hard("h", "/etc/passwd")], "hard link to /etc/passwd");
    refused(&[E::Hard("h", "../x")], "hard link up");
}

#[test]
fn refuses_files_written_through_an_extracted_link() {
    // The link itself is inside (points to a sibling dir), but nothing may go through it.
    refused(
        &[
            E::Sym("d", "sub"),
            E::File("sub/keep", b"k"),
            E::File("d/evil", b"x"),
        ],
        "file through a link",
    );
    refused(
        &[E::Sym("d", "."), E::Sym("d/e", "x")],
        "link through a link",
    );
    // Each link lexically inside, but `b/..` resolves through b (= the root) to its parent.
    refused(
        &[E::Sym("b", "."), E::Sym("x", "b/..")],
        "link target through a link",
    );
}

#[test]
fn refused_archive_into_a_fresh_root_leaves_no_root_behind() {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("fresh");
    let archive = t.path().join("evil.tar.gz");
    raw_tar_gz(&archive, &[E::File("ok", b"1"), E::File("../x", b"x")]);
    let inst = ArchiveInstaller::new(InstallRoot::new(&root), Format::TarGz);
    assert!(inst.install(&archive, &v("1.0.0")).is_err());
    assert!(!root.exists());
}

#[test]
fn refuses_device_and_fifo_entries() {
    refused(&[E::Fifo("pipe")], "fifo");
}

#[test]
fn zip_slip_is_refused_and_good_zip_installs() {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("root");
    let inst = ArchiveInstaller::new(InstallRoot::new(&root), Format::Zip);
    let evil = t.path().join("evil.zip");
    zip_file(&evil, &[("ok", b"1"), ("../evil", b"x")], None);
    assert!(matches!(
        inst.install(&evil, &v("0.2.0")),
        Err(InstallError::UnsafeEntry { .. })
    ));
    let evil = t.path().join("evil2.zip");
    zip_file(&evil, &[], Some(("etc", "/etc")));
    assert!(matches!(
        inst.install(&evil, &v("0.2.0")),
        Err(InstallError::UnsafeEntry { .. })
    ));
    assert!(!t.path().join("evil").exists());
    let good = t.path().join("good.zip");
    zip_file(
        &good,
        &[("App.app/Contents/MacOS/app", b"bin")],
        Some(("App.app/link", "Contents")),
    );
    inst.install(&good, &v("0.2.0")).expect("install");
    assert_eq!(
        fs::read(root.join("current/App.app/Contents/MacOS/app")).expect("read"),
        b"bin"
    );
}

#[test]
fn install_switches_current_keeps_previous_prunes_older_and_rolls_back() {
    let t = tempfile::tempdir().expect("tmp");
    let root = InstallRoot::new(t.path().join("root"));
    let inst = ArchiveInstaller::new(root.clone(), Format::TarGz);
    for ver in ["0.1.0", "0.2.0", "0.3.0"] {
        let a = t.path().join(format!("{ver}.tar.gz"));
        tar_gz(
            &a,
            &[("bin/app", ver.as_bytes()), ("VERSION", ver.as_bytes())],
        );
        let done = inst.install(&a, &v(ver)).expect("install");
        assert_eq!(done.version, v(ver));
        assert_eq!(root.current_version(), Some(v(ver)));
        assert_eq!(
            fs::read(root.path().join("current/VERSION")).expect("r"),
            ver.as_bytes()
        );
    }
    assert_eq!(
        root.installed_versions(),
        vec![v("0.2.0"), v("0.3.0")],
        "0.1.0 pruned"
    );
    assert_eq!(root.previous_version(), Some(v("0.2.0")));
    let (from, to) = root.rollback().expect("rollback");
    assert_eq!((from, to), (Some(v("0.3.0")), v("0.2.0")));
    assert_eq!(
        fs::read(root.path().join("current/VERSION")).expect("r"),
        b"0.2.0"
    );
    // Nothing left behind.
    assert!(!root.path().join("current.tmp").exists());
    let names: Vec<_> = fs::read_dir(root.path().join("versions"))
        .expect("rd")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");
}

#[test]
fn unsupported_formats_say_so() {
    let t = tempfile::tempdir().expect("tmp");
    for f in [Format::Dmg, Format::Nsis, Format::Deb, Format::Rpm] {
        let i =
            railgun_core::update::installer_for(f, railgun_core::update::Platform::Linux, t.path());
        assert!(matches!(
            i.install(t.path(), &v("1.0.0")),
            Err(InstallError::Unsupported { format, .. }) if format == f
        ));
    }
}

#[test]
fn appimage_is_replaced_atomically_keeping_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().expect("tmp");
    let target = t.path().join("app.AppImage");
    fs::write(&target, b"old").expect("w");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o750)).expect("chmod");
    let staged = t.path().join("new");
    fs::write(&staged, b"new").expect("w");
    let i = railgun_core::update::AppImageInstaller {
        target: target.clone(),
    };
    i.install(&staged, &v("0.2.0")).expect("install");
    assert_eq!(fs::read(&target).expect("r"), b"new");
    assert_eq!(
        fs::metadata(&target).expect("m").permissions().mode() & 0o777,
        0o750
    );
    assert_eq!(
        fs::read(t.path().join("app.AppImage.previous")).expect("r"),
        b"old"
    );
}

#[test]
fn extraction_of_a_good_archive_keeps_modes() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().expect("tmp");
    let a = t.path().join("a.tar.gz");
    tar_gz(&a, &[("bin/app", b"x")]);
    let out = t.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    extract_tar_gz(&a, &out).expect("extract");
    assert_eq!(
        fs::metadata(out.join("bin/app"))
            .expect("m")
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
}

fn install_two(t: &Path) -> InstallRoot {
    let root = InstallRoot::new(t.join("root"));
    let inst = ArchiveInstaller::new(root.clone(), Format::TarGz);
    for ver in ["0.1.0", "0.2.0"] {
        let a = t.join(format!("{ver}.tar.gz"));
        tar_gz(&a, &[("VERSION", ver.as_bytes())]);
        inst.install(&a, &v(ver)).expect("install");
    }
    root
}

#[test]
fn boot_guard_reverts_after_three_failed_starts() {
    let t = tempfile::tempdir().expect("tmp");
    let root = install_two(t.path());
    let g = BootGuard::new(root.path());
    for n in 1..=3 {
        assert_eq!(
            g.on_startup().expect("startup"),
            StartupOutcome::Trial {
                version: v("0.2.0"),
                attempt: n
            }
        );
    }
    match g.on_startup().expect("startup") {
        StartupOutcome::Reverted(r) => assert_eq!((r.from, r.to), (v("0.2.0"), v("0.1.0"))),
        other => panic!("{other:?}"),
    }
    assert_eq!(root.current_version(), Some(v("0.1.0")));
    let rec = g.take_reverted().expect("take").expect("record");
    assert_eq!(rec.from, v("0.2.0"));
    assert!(g.take_reverted().expect("take").is_none(), "reported once");
    // The reverted-to version is not reverted again, and 0.2.0 is remembered as broken.
    for _ in 0..5 {
        assert!(!matches!(
            g.on_startup().expect("s"),
            StartupOutcome::Reverted(_)
        ));
    }
    assert_eq!(root.current_version(), Some(v("0.1.0")));
    assert_eq!(g.broken_versions().expect("b"), vec![v("0.2.0")]);
}

#[test]
fn boot_guard_does_not_revert_after_a_good_start() {
    let t = tempfile::tempdir().expect("tmp");
    let root = install_two(t.path());
    let g = BootGuard::new(root.path());
    assert!(matches!(
        g.on_startup().expect("s"),
        StartupOutcome::Trial { attempt: 1, .. }
    ));
    g.mark_boot_successful().expect("mark");
    for _ in 0..5 {
        assert_eq!(
            g.on_startup().expect("s"),
            StartupOutcome::Confirmed {
                version: v("0.2.0")
            }
        );
    }
    assert_eq!(root.current_version(), Some(v("0.2.0")));
    assert!(g.take_reverted().expect("take").is_none());
}

/// Child mode: installs versions 1.0.k in a loop, printing a line after each, until killed.
#[test]
fn child_apply_loop() {
    let Ok(dir) = std::env::var("RAILGUN_TEST_APPLY_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let root = InstallRoot::new(dir.join("root"));
    let inst = ArchiveInstaller::new(root, Format::TarGz);
    let archive = dir.join("big.tar.gz");
    let out = std::io::stdout();
    for k in 1.. {
        inst.install(&archive, &v(&format!("1.0.{k}")))
            .expect("install");
        let mut o = out.lock();
        writeln!(o, "installed {k}").expect("write");
        o.flush().expect("flush");
    }
}

#[test]
fn sigkill_during_apply_leaves_old_or_new_never_broken() {
    let t = tempfile::tempdir().expect("tmp");
    // Many files so that a kill lands mid-extraction; COMPLETE is the last entry.
    let files: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("lib/f{i}"), vec![i as u8; 2048]))
        .chain(std::iter::once(("COMPLETE".to_string(), b"yes".to_vec())))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    tar_gz(&t.path().join("big.tar.gz"), &refs);
    let root = InstallRoot::new(t.path().join("root"));
    ArchiveInstaller::new(root.clone(), Format::TarGz)
        .install(&t.path().join("big.tar.gz"), &v("1.0.0"))
        .expect("first install");

    for round in 0..4 {
        let mut child = child_command(module_path!(), "child_apply_loop")
            .env("RAILGUN_TEST_APPLY_CHILD", t.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let lines = stdout_lines(&mut child);
        // Wait for `round + 1` completed installs, then kill during the next one.
        let mut seen = 0;
        while seen <= round {
            let line = match lines.recv_timeout(crate::DEADLINE) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    panic!(
                        "child output: {e} after waiting up to {:?}",
                        crate::DEADLINE
                    );
                }
            };
            if line.starts_with("installed") {
                seen += 1;
            }
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();

        let cur = root
            .current_version()
            .expect("current points to an installed version");
        let dir = root.path().join("current");
        assert_eq!(
            fs::read(dir.join("COMPLETE")).expect("complete version"),
            b"yes",
            "round {round}: current {cur} is incomplete"
        );
        assert_eq!(fs::read_dir(dir.join("lib")).expect("lib").count(), 300);
    }
}
