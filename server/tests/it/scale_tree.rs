//! Scale-out, one update tree: three real `railgun serve` processes on one PostgreSQL
//! database and one object store (`--object-store file:///…`), each with an empty local
//! `--root`. A release published through the first is checked, downloaded with `Range` and
//! installed through the other two (same bytes, same `ETag`s); the halt the leading engine
//! decides reaches the clients of every server. The same with `s3://` against moto's
//! S3-compatible server (two servers), and `railgun release export --object-store` reading
//! the tree back from the bucket.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use railgun_core::update::InstallRoot;
use railgun_core::update::RolloutPolicy;
use railgun_core::Version;
use railgun_server::rollout::verify_channel;
use serde_json::{json, Value};

use crate::delta_update::noise;
use crate::scale_leader::Cluster;
use crate::scale_nginx::Balancer;
use crate::support::{
    railgun_json, signed_release_with, utf8, within, Moto, ReleaseSpec, SignedRelease, ADMIN,
};

/// A tar.gz app of one file, larger than 1 MiB.
fn app_tar_gz() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let data = noise(7, 1_300_000);
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    tar.append_data(&mut h, "app/main.js", &data[..])
        .expect("append");
    tar.into_inner().expect("tar").finish().expect("gz")
}

/// The client flags of `check` / `update` against `url`, trusting the release key
/// `pubkey` and the rollout key `rollout_pub`.
fn client(url: &str, pubkey: &Path, rollout_pub: &Path) -> Vec<String> {
    [
        "--url",
        url,
        "--app",
        "demo",
        "--channel",
        "beta",
        "--json",
        "--install-id",
        "install-1",
        "--public-key",
        utf8(pubkey),
        "--rollout-public-key",
        utf8(rollout_pub),
    ]
    .map(str::to_string)
    .to_vec()
}

/// Signs a release of demo 1.1.0 on beta (a tar.gz over 1 MiB, relative to the manifest,
/// halting from 5 installs) and publishes it through server `i`: the manifest (started),
/// then the artifact. The release and the artifact's bytes.
async fn publish_through(c: &Cluster, i: usize) -> (SignedRelease, Vec<u8>) {
    let bytes = app_tar_gz();
    assert!(bytes.len() > 1 << 20);
    let release = signed_release_with(
        c.setup.dir.path(),
        &ReleaseSpec {
            app: "demo",
            channel: "beta",
            version: "1.1.0",
            policy: Some(RolloutPolicy {
                min_installs: 5,
                ..RolloutPolicy::default()
            }),
            released_at: Utc::now(),
            size: 0,
            base_url: None,
        },
        &c.setup.release_key,
        bytes.clone(),
    );
    let (status, v) = c
        .admin(
            i,
            "/admin/releases",
            json!({"manifest": release.envelope, "start": true}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["missingArtifacts"], json!([release.file]), "{v}");
    let put = c
        .http
        .put(format!(
            "{}/admin/releases/demo/1.1.0/artifacts/{}",
            c.url(i),
            release.file
        ))
        .bearer_auth(ADMIN)
        .body(bytes.clone());
    let r = within("upload", put.send()).await.expect("upload");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["rollout"]["status"], "active", "{v}");
    (release, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_share_one_tree_in_an_object_store() {
    let objects = tempfile::tempdir().expect("tempdir");
    let url = url::Url::from_directory_path(objects.path())
        .expect("file url")
        .to_string();
    let Some(c) = Cluster::start(
        "scale",
        3,
        |s, i| s.dir.path().join(format!("staging-{i}")),
        &["--object-store", &url],
    )
    .await
    else {
        return;
    };
    c.leader(Duration::from_secs(30)).await;
    let (release, bytes) = publish_through(&c, 0).await;
    // Nothing in the servers' own folders: the tree is the store.
    for i in 0..3 {
        let staging = c.setup.dir.path().join(format!("staging-{i}"));
        let files: Vec<_> = walk(&staging);
        assert!(files.is_empty(), "server {i} wrote locally: {files:?}");
    }

    // Every server serves the same channel state, with the same tag.
    let rollout_pub = c.setup.rollout_key.public_key().clone();
    let mut tags = Vec::new();
    let mut states = Vec::new();
    for i in 0..3 {
        let r = c.get(i, "/updates/demo/beta/channel.json", &[]).await;
        assert_eq!(r.0, 200);
        tags.push(r.1.clone());
        states.push(r.2.clone());
    }
    assert!(tags.windows(2).all(|w| w[0] == w[1]), "{tags:?}");
    assert!(states.windows(2).all(|w| w[0] == w[1]));
    let first = verify_channel(&states[0], &rollout_pub).expect("signed state");
    assert_eq!(first.release.version.to_string(), "1.1.0");

    // The artifact: whole through server 1, two ranges through server 2 under If-Range.
    let path = format!("/updates/demo/releases/1.1.0/{}", release.file);
    let (status, tag1, whole) = c.get(1, &path, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(whole, bytes);
    let (status, tag2, head) = c.get(2, &path, &[("range", "bytes=0-999")]).await;
    assert_eq!((status, &tag2), (206, &tag1));
    let (status, _, tail) = c
        .get(2, &path, &[("range", "bytes=1000-"), ("if-range", &tag1)])
        .await;
    assert_eq!(status, 206);
    assert_eq!([head, tail].concat(), bytes);
    let (status, _, _) = c.get(0, &path, &[("if-none-match", &tag1)]).await;
    assert_eq!(status, 304, "the tag of server 1 is server 0's too");

    // A client checks through server 1 and installs through server 2.
    let pubkey = c.setup.dir.path().join("release.pub");
    let rollout_pubkey = c.setup.dir.path().join("rollout.pub");
    std::fs::write(&rollout_pubkey, rollout_pub.to_pem()).expect("rollout.pub");
    let mut args = vec!["check".to_string()];
    args.extend(client(&c.url(1), &pubkey, &rollout_pubkey));
    args.extend(["--current-version".into(), "1.0.0".into()]);
    let check = railgun_json(&args).await;
    assert_eq!(
        (&check["update"], &check["version"]),
        (&json!(true), &json!("1.1.0")),
        "{check}"
    );
    let install = c.setup.dir.path().join("install");
    let mut args = vec!["update".to_string()];
    args.extend(client(&c.url(2), &pubkey, &rollout_pubkey));
    args.extend([
        "--current-version".into(),
        "1.0.0".into(),
        "--install-root".into(),
        utf8(&install).into(),
        "--state".into(),
        utf8(&c.setup.dir.path().join("client-state")).into(),
    ]);
    let up = railgun_json(&args).await;
    assert_eq!(up["version"], "1.1.0", "{up}");
    assert_eq!(
        InstallRoot::new(&install).current_version(),
        Some(Version::new(1, 1, 0))
    );

    // Installs report errors through server 2: the leader halts, and every server serves the
    // halted state at once.
    c.report_errors(2, "beta", "1.1.0", 12).await;
    c.until_halted(0, "beta", "1.1.0").await;
    for i in 0..3 {
        let state = within("halt reaches every server", async {
            loop {
                let (_, _, b) = c.get(i, "/updates/demo/beta/channel.json", &[]).await;
                let s = verify_channel(&b, &rollout_pub).expect("signed state");
                if s.sequence > first.sequence {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert_eq!(
            serde_json::to_value(state.rollout.status).expect("status"),
            "halted"
        );
    }
    let mut args = vec!["check".to_string()];
    args.extend(client(&c.url(1), &pubkey, &rollout_pubkey));
    args.extend(["--current-version".into(), "1.0.0".into()]);
    let check = railgun_json(&args).await;
    assert_eq!(check["update"], false, "{check}");
    assert_eq!(check["rollout"]["status"], "halted", "{check}");

    // Behind the deployment kit's nginx (round robin over the three): one tag for the
    // state whichever server answers, a download resumed across servers, a client's check.
    let addrs: Vec<_> = c.servers.iter().flatten().map(|s| s.addr).collect();
    let Some(lb) = Balancer::start(&c.setup.dir.path().join("nginx"), &addrs).await else {
        return;
    };
    let get = |path: String, headers: Vec<(&'static str, String)>| {
        let mut rq = c.http.get(format!("{}{path}", lb.url));
        for (k, v) in headers {
            rq = rq.header(k, v);
        }
        async move {
            let r = within("through nginx", rq.send()).await.expect("get");
            let status = r.status().as_u16();
            let tag = r
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (status, tag, r.bytes().await.expect("body").to_vec())
        }
    };
    let mut tags = Vec::new();
    for _ in 0..6 {
        let (status, tag, _) = get("/updates/demo/beta/channel.json".into(), vec![]).await;
        assert_eq!(status, 200);
        tags.push(tag);
    }
    assert!(tags.windows(2).all(|w| w[0] == w[1]), "{tags:?}");
    let mut resumed = Vec::new();
    for (from, to) in [
        (0, 499_999),
        (500_000, 999_999),
        (1_000_000, bytes.len() - 1),
    ] {
        let (status, tag, part) = get(
            path.clone(),
            vec![
                ("range", format!("bytes={from}-{to}")),
                ("if-range", tag1.clone()),
            ],
        )
        .await;
        assert_eq!((status, &tag), (206, &tag1));
        resumed.extend(part);
    }
    assert_eq!(resumed, bytes, "a download resumed through three servers");
    let mut args = vec!["check".to_string()];
    args.extend(client(&lb.url, &pubkey, &rollout_pubkey));
    args.extend(["--current-version".into(), "1.0.0".into()]);
    let check = railgun_json(&args).await;
    assert_eq!(check["rollout"]["status"], "halted", "{check}");
}

/// Every regular file under `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_tree_in_an_s3_compatible_store() {
    let Some(moto) = Moto::start("updates") else {
        return;
    };
    let env = moto.env();
    let Some(c) = Cluster::start_with(
        "scale",
        2,
        |s, i| s.dir.path().join(format!("staging-{i}")),
        &["--object-store", "s3://updates/tree"],
        &env,
    )
    .await
    else {
        return;
    };
    c.leader(Duration::from_secs(30)).await;
    // Published through server 0 read through 1.
    let (release, bytes) = publish_through(&c, 0).await;
    let (status, tag0, state0) = c.get(0, "/updates/demo/beta/channel.json", &[]).await;
    assert_eq!(status, 200);
    let (status, tag1, state1) = c.get(1, "/updates/demo/beta/channel.json", &[]).await;
    assert_eq!((status, &tag1, &state1), (200, &tag0, &state0));
    let rollout_pub = c.setup.rollout_key.public_key().clone();
    verify_channel(&state1, &rollout_pub).expect("signed state");
    let path = format!("/updates/demo/releases/1.1.0/{}", release.file);
    let (status, tag, whole) = c.get(1, &path, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(whole, bytes);
    let (status, tag_r, head) = c.get(1, &path, &[("range", "bytes=0-65535")]).await;
    assert_eq!((status, &tag_r), (206, &tag));
    let (status, _, tail) = c
        .get(0, &path, &[("range", "bytes=65536-"), ("if-range", &tag)])
        .await;
    assert_eq!(status, 206);
    assert_eq!(
        [head, tail].concat(),
        bytes,
        "a download resumed on the other server"
    );
    let (status, _, _) = c.get(0, &path, &[("if-none-match", &tag)]).await;
    assert_eq!(status, 304, "the tag of server 1 is server 0's too");
    // Nothing in the servers' own folders.
    for i in 0..2 {
        let staging = c.setup.dir.path().join(format!("staging-{i}"));
        assert!(walk(&staging).is_empty(), "server {i} wrote locally");
    }

    // `railgun release export` reads the tree from the bucket.
    let rollout_pubkey = c.setup.dir.path().join("rollout.pub");
    std::fs::write(&rollout_pubkey, rollout_pub.to_pem()).expect("rollout.pub");
    let out = c.setup.dir.path().join("cdn");
    let release_pubkey = c.setup.dir.path().join("release.pub");
    let args = [
        "release",
        "export",
        "--object-store",
        "s3://updates/tree",
        "--out",
        utf8(&out),
        "--public-key",
        utf8(&release_pubkey),
        "--rollout-public-key",
        utf8(&rollout_pubkey),
    ];
    let o = Command::new(env!("CARGO_BIN_EXE_railgun"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("release export");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("1 channel state(s), 1 release(s)"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(out.join("demo/releases/1.1.0").join(&release.file)).expect("artifact"),
        bytes
    );
    assert_eq!(
        std::fs::read(out.join("demo/beta/channel.json")).expect("state"),
        state0
    );
}
